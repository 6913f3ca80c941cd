package apps

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// List returns the Applications in namespace ("" for all), sorted.
func List(ctx context.Context, c client.Client, namespace string) ([]berthv1.Application, error) {
	var l berthv1.ApplicationList
	if err := c.List(ctx, &l, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing Applications: %w", err)
	}
	sort.Slice(l.Items, func(i, j int) bool {
		if l.Items[i].Namespace != l.Items[j].Namespace {
			return l.Items[i].Namespace < l.Items[j].Namespace
		}
		return l.Items[i].Name < l.Items[j].Name
	})
	return l.Items, nil
}

// PrintTable writes apps like `kubectl get`: what runs where, at which
// commit, how healthy, and why not when it is not.
func PrintTable(w io.Writer, apps []berthv1.Application, allNamespaces bool, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if allNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tENV\tREVISION\tHEALTH\tSYNC\tREADY\tAGE\tMESSAGE")
	for _, a := range apps {
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", a.Namespace)
		}
		ready, msg := "Unknown", ""
		if c := meta.FindStatusCondition(a.Status.Conditions, berthv1.ConditionReady); c != nil {
			ready, msg = string(c.Status), c.Message
		}
		if c := meta.FindStatusCondition(a.Status.Conditions, berthv1.ConditionStalled); c != nil && c.Status == "True" {
			msg = c.Message
		}
		if a.DeletionTimestamp != nil {
			// Deleted, waiting for the agent's cleanup (or for an agent).
			msg = fmt.Sprintf("Terminating for %s: %s", duration.HumanDuration(now.Sub(a.DeletionTimestamp.Time)), msg)
		}
		if len(msg) > 100 {
			msg = msg[:97] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, dash(a.Spec.Environment), dash(shortSHA(a.Status.LastAppliedRevision)),
			dash(a.Status.Health), dash(a.Status.Sync), ready, duration.HumanDuration(now.Sub(a.CreationTimestamp.Time)), msg)
	}
	_ = tw.Flush()
}

// WatchTimeout, when set, asks the API server to end each watch after it
// (tests); 0 leaves the server's own limit (30 to 60 minutes).
var WatchTimeout time.Duration

// Watch prints the table again whenever an Application changes, until ctx
// ends. A watch the API server ends (it ends each after a while, and on a
// restart) or breaks is started again, and the table printed afresh.
func Watch(ctx context.Context, c client.WithWatch, namespace string, w io.Writer, allNamespaces bool) error {
	show := func() error {
		apps, err := List(ctx, c, namespace)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "--- %s\n", time.Now().Format(time.TimeOnly))
		PrintTable(w, apps, allNamespaces, time.Now())
		return nil
	}
	start := func() (watch.Interface, error) {
		opts := []client.ListOption{client.InNamespace(namespace)}
		if WatchTimeout > 0 {
			secs := int64(WatchTimeout / time.Second)
			opts = append(opts, &client.ListOptions{Raw: &metav1.ListOptions{TimeoutSeconds: &secs}})
		}
		var l berthv1.ApplicationList
		return c.Watch(ctx, &l, opts...)
	}
	wi, err := start()
	if err != nil {
		return fmt.Errorf("watching Applications: %w", err)
	}
	defer func() {
		if wi != nil {
			wi.Stop()
		}
	}()
	if err := show(); err != nil {
		return err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	dirty := false
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-wi.ResultChan():
			if ok && ev.Type != watch.Error {
				if ev.Type != watch.Bookmark {
					dirty = true
				}
				continue
			}
			// Ended or broken: watch again (whatever changed meanwhile
			// shows in the table printed then).
			wi.Stop()
			wi = nil
			for {
				next, err := start()
				if err == nil {
					wi = next
					break
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
			}
			backoff = time.Second
			dirty = true
		case <-tick.C:
			if dirty {
				dirty = false
				if err := show(); err != nil {
					return err
				}
			}
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortSHA(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}
