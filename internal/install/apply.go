package install

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
	"github.com/berth-dev/berth/internal/manifest"
)

// Apply installs (or upgrades) berth with cfg's identity, through the same
// staged server-side apply the agent uses. A cluster that does not serve
// MutatingAdmissionPolicy (before Kubernetes 1.36) gets everything but the
// finalizer policy, listed as skipped with the reason.
func Apply(ctx context.Context, cfg *rest.Config, o Options) (apply.ChangeSet, error) {
	data, err := Manifests(o)
	if err != nil {
		return apply.ChangeSet{}, err
	}
	objs, err := manifest.Parse("berth-install.yaml", data)
	if err != nil {
		return apply.ChangeSet{}, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return apply.ChangeSet{}, fmt.Errorf("creating discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return apply.ChangeSet{}, fmt.Errorf("creating client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	objs, skipped, err := servedOnly(mapper, objs)
	if err != nil {
		return apply.ChangeSet{}, err
	}
	cs, err := apply.NewManager(dyn, mapper).Apply(ctx, objs)
	cs.Entries = append(cs.Entries, skipped...)
	if err != nil || len(skipped) > 0 {
		return cs, err
	}
	probeNS := o.Namespace
	if o.APIOnly {
		probeNS = "default"
	}
	return cs, waitForFinalizerPolicy(ctx, dyn, probeNS, policyWait)
}

// policyWait bounds waitForFinalizerPolicy: the API server loads a new
// CRD's schema for its mutating policies every 5 s.
const policyWait = time.Minute

// waitForFinalizerPolicy waits until a new Application in namespace gets
// berth's cleanup finalizer, by dry-run creates. Until the API server has
// loaded the Application CRD's schema for its mutating admission policies
// it refuses every Application created (503, "There can be a delay
// between when CustomResourceDefinitions are created and when they are
// available"), whatever the policy's failurePolicy: the install returns
// only once Applications can be created. A dry run the install's account
// may not make, or a namespace that is not there, ends the wait with
// nothing proven, and no error.
func waitForFinalizerPolicy(ctx context.Context, dyn dynamic.Interface, namespace string, wait time.Duration) error {
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": berthv1.GroupVersion.String(), "kind": "Application",
		"metadata": map[string]any{"name": "berth-install-probe", "namespace": namespace},
		"spec":     map[string]any{"namespace": namespace, "source": map[string]any{"url": "https://berth.invalid/probe.git"}},
	}}
	apps := dyn.Resource(applications).Namespace(namespace)
	deadline := time.Now().Add(wait)
	for {
		got, err := apps.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err == nil && slices.Contains(got.GetFinalizers(), berthv1.CleanupFinalizer):
			return nil
		case err != nil && !apierrors.IsServiceUnavailable(err) && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err):
			return nil // not ours to prove (RBAC, a webhook, no such namespace)
		case apierrors.IsNotFound(err) && isNamespaceNotFound(err):
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("it was created without the finalizer %s", berthv1.CleanupFinalizer)
			}
			return fmt.Errorf("berth is installed, but %s later a new Application is still not created as it should be: %w", wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// isNamespaceNotFound reports whether err says a namespace is missing.
func isNamespaceNotFound(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Kind == "namespaces"
}

// optionalKinds are the kinds of the install a cluster may lack: the
// finalizer policy's (GA in Kubernetes 1.36). Without them the agent sets
// the finalizer itself, one write per Application.
var optionalKinds = map[string]bool{"MutatingAdmissionPolicy": true, "MutatingAdmissionPolicyBinding": true}

// servedOnly splits objs into those to apply and the skipped entries of
// optional kinds mapper does not know. Any other unknown kind is left in,
// for the apply's validation to refuse with the whole install.
func servedOnly(mapper meta.RESTMapper, objs []manifest.Object) ([]manifest.Object, []apply.Entry, error) {
	var keep []manifest.Object
	var skipped []apply.Entry
	for _, o := range objs {
		gvk := o.Object.GroupVersionKind()
		if optionalKinds[gvk.Kind] {
			_, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			switch {
			case meta.IsNoMatchError(err):
				skipped = append(skipped, apply.Entry{ID: o.ID(), Source: o.Source, Action: apply.Skipped,
					Reason: fmt.Sprintf("the cluster does not serve %s %s (Kubernetes 1.36 and later): the agent sets the finalizer %s on each Application's first pass instead", gvk.GroupVersion(), gvk.Kind, berthv1.CleanupFinalizer)})
				continue
			case err != nil:
				return nil, nil, fmt.Errorf("looking up %s: %w", gvk.Kind, err)
			}
		}
		keep = append(keep, o)
	}
	return keep, skipped, nil
}
