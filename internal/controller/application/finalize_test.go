package application

import (
	"testing"
	"time"
)

// A failed cleanup that runs off the workers (a chart's pre-delete hook
// failing) is run again a poll later, then less and less often, never
// more than 2 minutes apart.
func TestCleanupRetriesSpreadOut(t *testing.T) {
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 2 * time.Minute, 2 * time.Minute, 2 * time.Minute}
	for failures, w := range want {
		if got := (&cleanupRun{failures: failures}).retryAfter(); got != w {
			t.Errorf("after %d failures in a row: retry after %s, want %s", failures+1, got, w)
		}
	}
}
