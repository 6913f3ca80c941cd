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
	installRank   = rankOf(releaseutil.InstallOrder)
	uninstallRank = rankOf(releaseutil.UninstallOrder)
)

func rankOf(order releaseutil.KindSortOrder) map[string]int {
	m := make(map[string]int, len(order))
	for i, k := range order {
		m[k] = i
	}
	return m
}

// compareKinds orders kind a before kind b by rank (negative), as above.
func compareKinds(rank map[string]int, a, b string) int {
	ra, aok := rank[a]
	rb, bok := rank[b]
	switch {
	case aok && bok:
		return ra - rb
	case aok:
		return -1
	case bok:
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// inInstallOrder sorts plans, stably, in the order they are written.
func inInstallOrder(plans []*planned) {
	slices.SortStableFunc(plans, func(a, b *planned) int {
		return compareKinds(installRank, a.obj.Object.GetKind(), b.obj.Object.GetKind())
	})
}

// InUninstallOrder returns refs, stably sorted in the order Prune deletes
// them (refs itself is not changed): Helm's uninstall order, except that
// kinds Helm does not list (custom resources) go right after the webhook
// configurations and APIServices, before the workloads: an operator
// deleted first would leave its resources' finalizers to no one, and them
// (and their namespace) stuck.
func InUninstallOrder(refs []Ref) []Ref {
	out := slices.Clone(refs)
	slices.SortStableFunc(out, func(a, b Ref) int {
		ra, rb := uninstallPosition(a.GVK.Kind), uninstallPosition(b.GVK.Kind)
		if ra != rb {
			return ra - rb
		}
		return strings.Compare(unknownKind(a.GVK.Kind), unknownKind(b.GVK.Kind))
	})
	return out
}

// uninstallPosition is kind's place in the uninstall order, counted in
// halves: a kind Helm does not list sits between APIService and the kind
// that follows it.
func uninstallPosition(kind string) int {
	if r, ok := uninstallRank[kind]; ok {
		if r > uninstallRank["APIService"] {
			return 2*r + 2
		}
		return 2 * r
	}
	return 2*uninstallRank["APIService"] + 1
}

// unknownKind is kind when Helm does not list it (custom resources are
// ordered by kind name), "" otherwise.
func unknownKind(kind string) string {
	if _, ok := uninstallRank[kind]; ok {
		return ""
	}
	return kind
}
