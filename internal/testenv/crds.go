package testenv

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/install"
)

var (
	apiOnce sync.Once
	apiErr  error
)

// InstallAPI applies berth's API to the sandbox once per test binary, the
// way `berth install` does: its CRDs (waiting until they are Established)
// and the admission policy that gives every new Application the cleanup
// finalizer. It then waits until discovery lists the resources: a client
// made at once looks them up there, and an Established CRD reaches
// discovery a moment later.
func InstallAPI(t testing.TB, env *Env) {
	t.Helper()
	apiOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, apiErr = install.Apply(ctx, env.Config, install.Options{APIOnly: true}); apiErr != nil {
			return
		}
		apiErr = waitDiscovered(ctx, env, "berth.dev/v1alpha1", "applications", "releases")
	})
	if apiErr != nil {
		t.Fatalf("installing berth's API: %v", apiErr)
	}
}

// waitDiscovered waits until discovery lists resources in groupVersion.
func waitDiscovered(ctx context.Context, env *Env, groupVersion string, resources ...string) error {
	for {
		l, err := env.Client.Discovery().ServerResourcesForGroupVersion(groupVersion)
		if err == nil {
			var names []string
			for _, r := range l.APIResources {
				names = append(names, r.Name)
			}
			if !slices.ContainsFunc(resources, func(r string) bool { return !slices.Contains(names, r) }) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("discovery does not list %v in %s: %v (%w)", resources, groupVersion, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
