package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/apply"
)

// UnhealthyError is a step whose objects did not all become healthy: one
// failed (kstatus Failed, e.g. a rollout past its progress deadline, or
// vanished), or the timeout passed first.
type UnhealthyError struct {
	Report apply.Report
	// Timeout is set when the wait ran out rather than an object failing.
	Timeout time.Duration
}

func (e *UnhealthyError) Error() string {
	var b strings.Builder
	if e.Timeout > 0 {
		fmt.Fprintf(&b, "not healthy within %s", e.Timeout)
	} else {
		b.WriteString("unhealthy")
	}
	for i, o := range e.Report.Failing() {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Report.Failing())-5)
			break
		}
		fmt.Fprintf(&b, "; %s: %s", o.ID, o.Status)
		if o.Message != "" {
			fmt.Fprintf(&b, ": %s", o.Message)
		}
	}
	return b.String()
}

// drill is what the steps share.
type drill struct {
	mgr     *apply.Manager
	scratch string
	timeout time.Duration
	out     io.Writer
	res     *Result
}

// step runs one move and records and prints its outcome. It reports
// whether the step passed; the error is a malfunction (the cluster
// unreachable, the drill interrupted), not a verdict.
func (d *drill) step(ctx context.Context, n int, name string, prev *set, next set) (bool, error) {
	start := time.Now()
	cs, err := d.move(ctx, prev, next)
	s := Step{Number: n, Name: name, Duration: time.Since(start), Changes: cs, Err: err}
	d.res.Steps = append(d.res.Steps, s)
	if err == nil {
		d.printStep(s, cs.Summary()+"; healthy")
		return true, nil
	}
	d.printStep(s, err.Error())
	if !isVerdict(err) {
		return false, fmt.Errorf("step %d (%s): %w", n, name, err)
	}
	d.res.fail(n, name, err)
	return false, nil
}

func (d *drill) printStep(s Step, detail string) {
	verdict := "ok"
	if s.Err != nil {
		verdict = "FAILED"
	}
	fmt.Fprintf(d.out, "%d/4 %-32s %-6s %6s  %s\n", s.Number, s.Name, verdict, round(s.Duration), detail)
}

// isVerdict reports whether err says something about the releases (the
// drill fails) rather than about the tool or the connection.
func isVerdict(err error) bool {
	var ve *apply.ValidationError
	var we *apply.WriteError
	var ue *UnhealthyError
	return errors.As(err, &ve) || errors.As(err, &we) || errors.As(err, &ue)
}

// move brings the scratch namespace from prev (nil: empty) to next, as the
// agent moves an Application from one release to another: dry-run what
// cannot be isolated, apply the rest, prune what prev held and next does
// not, wait until next is healthy.
func (d *drill) move(ctx context.Context, prev *set, next set) (apply.ChangeSet, error) {
	var cs apply.ChangeSet
	if len(next.checkOnly) > 0 {
		if _, err := d.mgr.Validate(ctx, next.checkOnly); err != nil {
			return cs, err
		}
	}
	since := time.Now()
	cs, err := d.mgr.Apply(ctx, next.isolated)
	if err != nil {
		return cs, err
	}
	if prev != nil {
		prune, kept := gone(prev.isolated, next.isolated)
		pcs, err := d.mgr.Prune(ctx, prune, apply.PruneOptions{
			OwnerLabels:     map[string]string{DrillLabel: d.scratch},
			PruneAnnotation: berthv1.PruneAnnotation,
		})
		cs.Entries = append(cs.Entries, pcs.Entries...)
		cs.Entries = append(cs.Entries, kept...)
		if err != nil {
			return cs, err
		}
	}
	return cs, d.waitHealthy(ctx, refs(next.isolated), since)
}

// waitHealthy polls the health of refs until all are Current, one failed,
// or the timeout passes. Rollout failures recorded before since are stale
// (see apply.Manager.HealthSince).
func (d *drill) waitHealthy(ctx context.Context, rs []apply.Ref, since time.Time) error {
	deadline := time.Now().Add(d.timeout)
	for {
		rep, err := d.mgr.HealthSince(ctx, rs, since)
		if err != nil {
			return err
		}
		switch {
		case rep.Health == apply.Healthy:
			return nil
		case rep.Health == apply.Degraded && failed(rep):
			return &UnhealthyError{Report: rep}
		case time.Now().After(deadline):
			return &UnhealthyError{Report: rep, Timeout: d.timeout}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// failed reports whether an object of rep failed for good.
func failed(rep apply.Report) bool {
	for _, o := range rep.Objects {
		if o.Status == status.FailedStatus || o.Status == status.NotFoundStatus {
			return true
		}
	}
	return false
}

func round(d time.Duration) string {
	return d.Round(100 * time.Millisecond).String()
}
