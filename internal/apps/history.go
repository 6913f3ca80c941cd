package apps

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

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
// healthy release before the current one) and returns the chosen number.
func RequestRollback(ctx context.Context, c client.Client, key types.NamespacedName, n int64) (int64, error) {
	app := &berthv1.Application{}
	if err := c.Get(ctx, key, app); err != nil {
		return 0, fmt.Errorf("reading %s: %w", key, err)
	}
	if n == 0 {
		rels, err := (&release.Store{Client: c}).List(ctx, key.Namespace, key.Name)
		if err != nil {
			return 0, err
		}
		prev := release.LastHealthy(rels, app.Status.CurrentRelease)
		if prev == nil {
			return 0, fmt.Errorf("%s has no healthy release before release %d", key, app.Status.CurrentRelease)
		}
		n = prev.Spec.Number
	}
	if _, err := (&release.Store{Client: c}).Get(ctx, key.Namespace, key.Name, n); err != nil {
		return 0, err
	}
	tok := fmt.Sprintf("%d@%s", n, time.Now().UTC().Format(time.RFC3339Nano))
	return n, annotate(ctx, c, key, berthv1.RollbackAnnotation, tok)
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
