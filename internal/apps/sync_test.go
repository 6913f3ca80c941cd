package apps

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// Two `berth sync` at once: the agent handles the later request, with a
// sync that began after both; the earlier one is answered by it. Tokens
// are RFC 3339 times with trailing zeros trimmed, so they are compared as
// times, not as strings.
func TestALaterRequestCoversAnEarlierOne(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tok := func(d time.Duration) string { return at.Add(d).Format(time.RFC3339Nano) }
	for _, tt := range []struct {
		handled, token string
		want           bool
	}{
		{tok(0), tok(0), true},
		{tok(time.Millisecond), tok(0), true},
		{tok(10 * time.Millisecond), tok(9*time.Millisecond + 900*time.Microsecond), true}, // ".01" after ".0099"
		{tok(0), tok(time.Millisecond), false},
		{"", tok(0), false},
		{"not a time", tok(0), false},
	} {
		if got := covers(tt.handled, tt.token); got != tt.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.handled, tt.token, got, tt.want)
		}
	}
}

// A sync whose apply failed is an answer (the agent's reason), not a
// wait until the timeout.
func TestSettledOnAFailedApply(t *testing.T) {
	app := &berthv1.Application{}
	meta.SetStatusCondition(&app.Status.Conditions, metav1.Condition{Type: berthv1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: "ApplyFailed", Message: "revision abc1234 failed to apply: exceeded quota"})
	done, err := settled(app)
	if !done || err == nil || !strings.Contains(err.Error(), "exceeded quota") {
		t.Errorf("settled = %v, %v; want done with the agent's reason", done, err)
	}
	meta.SetStatusCondition(&app.Status.Conditions, metav1.Condition{Type: berthv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Progressing"})
	if done, _ := settled(app); done {
		t.Error("a rollout in progress counts as settled")
	}
}
