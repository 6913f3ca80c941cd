package failpoint

import (
	"os"
	"syscall"
)

// Env is the environment variable naming the armed failpoint.
const Env = "BERTH_FAILPOINT"

// Names of the failpoints the agent has.
const (
	// RollbackApplied is reached after a rollback re-applied the target
	// release's manifests and before the rollback is recorded.
	RollbackApplied = "rollback-applied"
	// RollbackRecorded is reached after the rollback release was recorded
	// and before the Application's status (the pin) is written.
	RollbackRecorded = "rollback-recorded"
	// HelmRollbackUpdate is reached inside a Helm rollback, after Helm
	// stored the pending-rollback revision and before it updates the
	// cluster: a kill here leaves the release locked.
	HelmRollbackUpdate = "helm-rollback-update"
)

var armed = os.Getenv(Env)

// Enabled reports whether a failpoint is armed in this process.
func Enabled() bool { return armed != "" }

// Inject kills the process when name is the armed failpoint.
func Inject(name string) {
	if armed == "" || armed != name {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
