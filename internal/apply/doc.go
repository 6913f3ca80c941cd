// Package apply is the only package that talks server-side apply to the
// cluster. It validates a whole revision with a strict server-side dry-run
// before the first real write, applies in stages (CustomResourceDefinitions
// and Namespaces first, waiting for CRDs to be established, then the rest;
// each stage in Helm's install order by kind),
// reports a ChangeSet (created, configured, unchanged, deleted, skipped),
// prunes what a revision no longer contains while protecting
// PersistentVolumeClaims and Namespaces, computes health with kstatus and
// renders diffs.
//
// Every call goes through the Manager's client, which the caller builds
// impersonating the Application's service account, so RBAC decides what a
// revision may touch. The field manager is the constant FieldManager.
package apply
