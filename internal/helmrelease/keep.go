package helmrelease

import (
	"helm.sh/helm/v4/pkg/kube"
)

// keepRemoved is Helm's client with one change: an upgrade or rollback
// updates the objects both releases hold and creates the new ones, but
// deletes none of those only the old release held. Helm would delete them
// all, sparing only objects annotated helm.sh/resource-policy: keep, and a
// chart that stops rendering a PersistentVolumeClaim would lose its data.
// The caller prunes them instead, by its own rules (PersistentVolumeClaims,
// Namespaces and CustomResourceDefinitions kept unless opted in, objects
// annotated not to be pruned, prune turned off for the Application).
type keepRemoved struct {
	kube.Interface
}

// Update implements kube.Interface.
func (k keepRemoved) Update(original, target kube.ResourceList, options ...kube.ClientUpdateOption) (*kube.Result, error) {
	return k.Interface.Update(original.Intersect(target), target, options...)
}

// GetWaiterWithOptions hands Helm's wait options (the context) to the
// wrapped client.
func (k keepRemoved) GetWaiterWithOptions(ws kube.WaitStrategy, opts ...kube.WaitOption) (kube.Waiter, error) {
	return waiterWithOptions(k.Interface, ws, opts...)
}

// waiterWithOptions returns c's waiter with opts when c takes options.
// Helm asks a client for that interface: a wrapper that embeds
// kube.Interface does not promote its wrapped client's method, and Helm
// would wait without them (without the context, for one).
func waiterWithOptions(c kube.Interface, ws kube.WaitStrategy, opts ...kube.WaitOption) (kube.Waiter, error) {
	if wc, ok := c.(kube.InterfaceWaitOptions); ok {
		return wc.GetWaiterWithOptions(ws, opts...)
	}
	return c.GetWaiter(ws)
}
