package gitrevert

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/release"
)

// RestoreRelease restores, in Git, the Application key's path on its branch
// to the content of release n's commit (see Restore), pushing with creds.
// The Application's own credentials (spec.source.secretRef) are not used.
func RestoreRelease(ctx context.Context, c client.Reader, key types.NamespacedName, n int64, creds Credentials) (*Result, error) {
	app := &berthv1.Application{}
	if err := c.Get(ctx, key, app); err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	src := app.Spec.Source
	switch {
	case src.Commit != "":
		return nil, fmt.Errorf("%s deploys commit %s, not a branch: there is no branch to push to", key, release.ShortCommit(src.Commit))
	case src.Tag != "":
		return nil, fmt.Errorf("%s deploys tag %s, not a branch: there is no branch to push to", key, src.Tag)
	}
	store := &release.Store{Reader: c}
	rel, err := store.Get(ctx, key.Namespace, key.Name, n)
	if err != nil {
		return nil, err
	}
	return Restore(ctx, Request{
		URL: src.URL, Branch: src.Branch, Path: src.Path, Commit: rel.Spec.Commit, Credentials: creds,
		Application: key.String(), Release: n, FromRelease: fromRelease(ctx, store, app, n),
	})
}

// fromRelease is the release rolled away from: the current one, unless the
// agent already rolled back (then the current release is the rollback
// itself and the answer is unknown, 0).
func fromRelease(ctx context.Context, store *release.Store, app *berthv1.Application, n int64) int64 {
	cur := app.Status.CurrentRelease
	if cur == 0 || cur == n {
		return 0
	}
	rel, err := store.Get(ctx, app.Namespace, app.Name, cur)
	if err != nil || (rel.Spec.Trigger == berthv1.TriggerRollback && rel.Spec.RollbackOf == n) {
		return 0
	}
	return cur
}
