package apps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/release"
)

// PrintHistory writes an Application's releases, newest first: number,
// commit, images, trigger, health, way back, age and why.
func PrintHistory(ctx context.Context, c client.Client, key types.NamespacedName, w io.Writer, now time.Time) error {
	app := &berthv1.Application{}
	if err := c.Get(ctx, key, app); err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	rels, err := (&release.Store{Client: c}).List(ctx, key.Namespace, key.Name)
	if err != nil {
		return err
	}
	if p := app.Status.Pin; p != nil {
		fmt.Fprintf(w, "pinned to release %d, Git at %s (%s) — `berth unpin %s` or a new commit follows Git again\n\n",
			p.Release, release.ShortCommit(app.Status.LastFetchedRevision), p.Reason, key.Name)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REV\tCOMMIT\tIMAGES\tTRIGGER\tHEALTH\tWAY BACK\tAGE\tWHY")
	for _, r := range rels {
		cur := ""
		if r.Spec.Number == app.Status.CurrentRelease {
			cur = "*"
		}
		wb := "-"
		if r.Status.WayBack != nil {
			wb = r.Status.WayBack.Status
			if r.Status.WayBack.ToRelease > 0 {
				wb += fmt.Sprintf(" (to %d)", r.Status.WayBack.ToRelease)
			}
			if r.Status.WayBack.Status == "Blocked" {
				wb += ": " + trim(r.Status.WayBack.Reason, 60)
			}
		}
		why := r.Status.Reason
		if r.Spec.RollbackOf > 0 {
			why = fmt.Sprintf("rollback to release %d; %s", r.Spec.RollbackOf, why)
		}
		if s := r.Spec.Snapshot; s != nil {
			data := "snapshot " + s.ID
			if rs := r.Status.Restored; rs != nil && rs.ForRollback > 0 {
				data += fmt.Sprintf(" (restored by release %d)", rs.ForRollback)
			} else if rs != nil {
				data += " (restored by a rollback not recorded)"
			}
			why = data + "; " + why
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Spec.Number, cur, release.ShortCommit(r.Spec.Commit),
			release.ImagesSummary(r.Spec.Images), r.Spec.Trigger, dash(r.Status.Health), wb,
			duration.HumanDuration(now.Sub(r.CreationTimestamp.Time)), trim(why, 90))
	}
	return tw.Flush()
}

// RequestRollback asks the agent to roll back to release n (0: the newest
// healthy release before the current one) and returns the chosen number
// and the request's token (for WaitRollback).
func RequestRollback(ctx context.Context, c client.Client, key types.NamespacedName, n int64) (int64, string, error) {
	app := &berthv1.Application{}
	if err := c.Get(ctx, key, app); err != nil {
		return 0, "", fmt.Errorf("reading %s: %w", key, err)
	}
	if n == 0 {
		rels, err := (&release.Store{Client: c}).List(ctx, key.Namespace, key.Name)
		if err != nil {
			return 0, "", err
		}
		prev := release.LastHealthy(rels, app.Status.CurrentRelease)
		if prev == nil {
			return 0, "", fmt.Errorf("%s has no healthy release before release %d", key, app.Status.CurrentRelease)
		}
		n = prev.Spec.Number
	}
	if _, err := (&release.Store{Client: c}).Get(ctx, key.Namespace, key.Name, n); err != nil {
		return 0, "", err
	}
	tok := fmt.Sprintf("%d@%s", n, time.Now().UTC().Format(time.RFC3339Nano))
	return n, tok, annotate(ctx, c, key, berthv1.RollbackAnnotation, tok)
}

// RollbackRefusedError is the agent's refusal of a rollback request:
// nothing was changed.
type RollbackRefusedError struct {
	Message string
}

func (e *RollbackRefusedError) Error() string { return "the agent refused the rollback: " + e.Message }

// WaitRollback waits until the agent handled rollback request token. Once
// it rolled back, it waits for the verdict of the release the rollback
// recorded and returns that release: Healthy, or an error with the
// agent's reason when it failed. A refusal is a *RollbackRefusedError; a
// rollback that failed after its data restore (the agent retries it) is
// another error, as is ctx ending.
func WaitRollback(ctx context.Context, c client.Client, key types.NamespacedName, token string) (*berthv1.Release, error) {
	store := &release.Store{Client: c}
	var rel *berthv1.Release
	for {
		app := &berthv1.Application{}
		err := c.Get(ctx, key, app)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading %s: %w", key, err)
		}
		// The agent writes the outcome in the status write that marks the
		// token handled. Other read errors are retried.
		if err == nil && app.Status.LastHandledRollback == token {
			if rel == nil {
				// The release this request recorded, wherever the
				// history has moved since (a new commit, an automatic
				// rollback).
				if rels, err := store.List(ctx, key.Namespace, key.Name); err == nil {
					for i := range rels {
						if rels[i].Spec.Request == token {
							rel = &rels[i]
							break
						}
					}
				}
			} else if fresh, err := store.Get(ctx, key.Namespace, key.Name, rel.Spec.Number); err == nil {
				rel = fresh
			}
			stalled := meta.FindStatusCondition(app.Status.Conditions, berthv1.ConditionStalled)
			ready := meta.FindStatusCondition(app.Status.Conditions, berthv1.ConditionReady)
			switch {
			case rel != nil:
				switch rel.Status.Health {
				case berthv1.ReleaseHealthy, berthv1.ReleaseSuperseded:
					return rel, nil
				case berthv1.ReleaseFailed, berthv1.ReleaseRolledBack:
					return rel, fmt.Errorf("rolled back as release %d, which is %s: %s", rel.Spec.Number, rel.Status.Health, rel.Status.Reason)
				}
			case stalled != nil && stalled.Status == metav1.ConditionTrue && stalled.Reason == "RollbackFailed":
				return nil, errors.New(stalled.Message)
			case ready != nil && ready.Reason == "RollbackRefused":
				return nil, &RollbackRefusedError{Message: ready.Message}
			}
		}
		select {
		case <-ctx.Done():
			return rel, fmt.Errorf("waiting for the agent to roll %s back: %w", key, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// RequestUnpin asks the agent to follow Git again.
func RequestUnpin(ctx context.Context, c client.Client, key types.NamespacedName) error {
	return annotate(ctx, c, key, berthv1.UnpinAnnotation, time.Now().UTC().Format(time.RFC3339Nano))
}

func annotate(ctx context.Context, c client.Client, key types.NamespacedName, k, v string) error {
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, k, v))
	app := &berthv1.Application{}
	app.Namespace, app.Name = key.Namespace, key.Name
	if err := c.Patch(ctx, app, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("annotating %s: %w", key, err)
	}
	return nil
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}
