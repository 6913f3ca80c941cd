package rehearsal

import (
	"fmt"
	"time"

	"github.com/berth-dev/berth/internal/apply"
)

// Step numbers. StepRead is the reading of the two releases, before the
// numbered steps.
const (
	StepRead     = 0
	StepDeploy   = 1
	StepUpgrade  = 2
	StepRollback = 3
	StepCleanup  = 4
)

// Step is the outcome of one step of the drill.
type Step struct {
	Number   int
	Name     string
	Duration time.Duration
	// Changes are what the step applied and pruned.
	Changes apply.ChangeSet
	// Err is why the step failed; nil when it passed.
	Err error
}

// Failure says which step of a drill failed and why. It is the drill's
// verdict, not a malfunction of the tool.
type Failure struct {
	Step   int
	Name   string
	Reason string
	// Err is the underlying error (errors.Is works through it, e.g. with
	// release.ErrDigestMismatch).
	Err error
}

func (f *Failure) Error() string {
	if f.Step == StepRead {
		return fmt.Sprintf("rehearsal failed before it started (%s): %s", f.Name, f.Reason)
	}
	return fmt.Sprintf("rehearsal failed at step %d (%s): %s", f.Step, f.Name, f.Reason)
}

func (f *Failure) Unwrap() error { return f.Err }

// Result is the outcome of a drill.
type Result struct {
	// From and To are the release numbers rehearsed.
	From, To int64
	// Namespace is the scratch namespace ("" when none was created).
	Namespace string
	// Identity is the user the drill's writes ran as.
	Identity string
	// Impersonated reports whether Identity is the Application's
	// service account (the agent's identity) rather than the caller.
	Impersonated bool
	// DryRunOnly lists objects that could not be isolated in the scratch
	// namespace (cluster-scoped, or in another namespace) and were only
	// checked with a server-side dry-run.
	DryRunOnly []string
	Steps      []Step
	// Failure is the first failed step; nil when the drill passed.
	Failure  *Failure
	Duration time.Duration
}

// Passed reports whether every step passed.
func (r *Result) Passed() bool { return r.Failure == nil }

// fail records the first failure.
func (r *Result) fail(step int, name string, err error) {
	if r.Failure == nil {
		r.Failure = &Failure{Step: step, Name: name, Reason: err.Error(), Err: err}
	}
}
