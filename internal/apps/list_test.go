package apps

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// The table says what runs where and why not; a deleted Application
// waiting for its cleanup says so, with the cleanup's own message.
func TestPrintTable(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	app := func(name, msg string, deleted *metav1.Time) berthv1.Application {
		a := berthv1.Application{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour)), DeletionTimestamp: deleted}}
		a.Spec.Environment = "staging"
		a.Status.LastAppliedRevision = "0123456789abcdef0123456789abcdef01234567"
		a.Status.Health, a.Status.Sync = "Healthy", "Synced"
		a.Status.Conditions = []metav1.Condition{{Type: berthv1.ConditionReady, Status: metav1.ConditionTrue, Message: msg}}
		return a
	}
	gone := metav1.NewTime(now.Add(-3 * time.Minute))
	var out bytes.Buffer
	PrintTable(&out, []berthv1.Application{
		app("web", "revision 0123456 applied, 4 objects healthy", nil),
		app("old", "deleted: cleanup failed; retrying", &gone),
	}, false, now)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("table:\n%s", out.String())
	}
	for _, want := range []string{"web", "staging", "0123456", "Healthy", "Synced", "True", "60m", "revision 0123456 applied"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "Terminating for 3m: deleted: cleanup failed; retrying") {
		t.Errorf("row of a deleted Application = %q, want it Terminating with the cleanup's message", lines[2])
	}
	if strings.Contains(lines[1], "Terminating") {
		t.Errorf("row %q says Terminating", lines[1])
	}
}
