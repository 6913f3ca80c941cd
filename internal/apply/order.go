package apply

import (
	"slices"
	"strings"

	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
)

// Within a stage, objects are written in Helm's install order by kind
// (ServiceAccounts, Secrets and ConfigMaps before the workloads that use
// them, Services before Deployments, webhook configurations last) and
// deleted in Helm's uninstall order: the order users of Helm know, taken
// from Helm rather than kept here. A Deployment written before its
// ServiceAccount has its Pods refused until the account exists, and one
// written before its ConfigMap starts containers that cannot run yet.
// Kinds Helm does not list (custom resources) are written after the ones
// it does, by kind name, and deleted before the workloads (see
// InUninstallOrder); objects of one kind keep the order Git gave them.
var (
	installOrder = kindOrder(releaseutil.InstallOrder, "")
	// An operator deleted before its custom resources would leave their
	// finalizers to no one, and them (and their namespace) stuck.
	uninstallOrder = kindOrder(releaseutil.UninstallOrder, "APIService")
)

// kindOrder compares kinds by their place in order; kinds order does not
// list (custom resources) go right after the kind after, or last when
// after is "", among themselves by name.
func kindOrder(order releaseutil.KindSortOrder, after string) func(a, b string) int {
	rank := make(map[string]int, len(order))
	for i, k := range order {
		rank[k] = 2 * i
	}
	unknown := 2 * len(order)
	if r, ok := rank[after]; ok {
		unknown = r + 1
	}
	return func(a, b string) int {
		ra, aok := rank[a]
		rb, bok := rank[b]
		if !aok {
			ra = unknown
		}
		if !bok {
			rb = unknown
		}
		if ra != rb || aok {
			return ra - rb
		}
		return strings.Compare(a, b)
	}
}

// inInstallOrder sorts plans, stably, in the order they are written.
func inInstallOrder(plans []*planned) {
	slices.SortStableFunc(plans, func(a, b *planned) int {
		return installOrder(a.obj.Object.GetKind(), b.obj.Object.GetKind())
	})
}

// InUninstallOrder returns refs, stably sorted in the order Prune deletes
// them (refs itself is not changed): Helm's uninstall order, except that
// kinds Helm does not list (custom resources) go right after the webhook
// configurations and APIServices, before the workloads.
func InUninstallOrder(refs []Ref) []Ref {
	out := slices.Clone(refs)
	slices.SortStableFunc(out, func(a, b Ref) int { return uninstallOrder(a.GVK.Kind, b.GVK.Kind) })
	return out
}
