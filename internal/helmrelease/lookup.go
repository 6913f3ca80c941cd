package helmrelease

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Lookup returns Helm's `lookup` template function, reading the cluster as
// cfg (the Application's impersonated account): lookup(apiVersion, kind,
// namespace, name) returns the object, or with name "" the list; namespace
// "" is cluster-wide; as in Helm, an object that does not exist is an
// empty map and a kind the cluster does not serve an error.
//
// Helm's own (engine.NewLookupFunction) asks discovery for the kind and
// builds new clients at every call, and cannot be stopped; this one maps
// kinds with mapper (the agent's, cached), makes its client on the first
// call and reads with ctx.
func Lookup(ctx context.Context, cfg *rest.Config, mapper meta.RESTMapper) func(apiVersion, kind, namespace, name string) (map[string]any, error) {
	client := sync.OnceValues(func() (*dynamic.DynamicClient, error) { return dynamic.NewForConfig(cfg) })
	return func(apiVersion, kind, namespace, name string) (map[string]any, error) {
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil {
			return nil, fmt.Errorf("lookup %q %q: %w", apiVersion, kind, err)
		}
		mapping, err := mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: kind}, gv.Version)
		if rm, ok := mapper.(meta.ResettableRESTMapper); ok && meta.IsNoMatchError(err) {
			rm.Reset() // a kind installed since discovery was read
			mapping, err = mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: kind}, gv.Version)
		}
		if err != nil {
			return nil, fmt.Errorf("lookup %s %s: %w", apiVersion, kind, err)
		}
		dc, err := client()
		if err != nil {
			return nil, err
		}
		res := dc.Resource(mapping.Resource)
		var ri dynamic.ResourceInterface = res
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace && namespace != "" {
			ri = res.Namespace(namespace)
		}
		what := fmt.Sprintf("%s %s %s/%s", apiVersion, kind, namespace, name)
		if u := cfg.Impersonate.UserName; u != "" {
			what += " as " + u
		}
		if name != "" {
			obj, err := ri.Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return map[string]any{}, nil
			}
			if err != nil {
				return nil, fmt.Errorf("lookup %s: %w", what, err)
			}
			return obj.UnstructuredContent(), nil
		}
		list, err := ri.List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			return map[string]any{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("lookup %s: %w", what, err)
		}
		return list.UnstructuredContent(), nil
	}
}
