//go:build !linux

package renderworker

import (
	"errors"
	"os"
	"os/exec"
)

// anonymousMemory is known on Linux only; elsewhere a worker is bounded by
// its timeout and GOMEMLIMIT.
func anonymousMemory(int) (int64, error) { return 0, errors.New("memory use is read on Linux only") }

func setParentDeathSignal(*exec.Cmd) {}

func limitData() error { return nil }

func protocolOutput() (*os.File, error) { return os.Stdout, nil }
