package testenv

import (
	"context"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/install"
)

var (
	crdOnce sync.Once
	crdErr  error
)

// InstallCRDs applies berth's CRDs to the sandbox once per test binary,
// the way `berth install` does (waiting until they are Established).
func InstallCRDs(t testing.TB, env *Env) {
	t.Helper()
	crdOnce.Do(func() {
		_, crdErr = install.Apply(context.Background(), env.Config, install.Options{CRDsOnly: true})
	})
	if crdErr != nil {
		t.Fatalf("installing CRDs: %v", crdErr)
	}
}
