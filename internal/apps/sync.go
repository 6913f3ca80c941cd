package apps

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
)

// RequestSync annotates the Application so the agent fetches and applies
// now, even when automated sync is off. It returns the request token.
func RequestSync(ctx context.Context, c client.Client, key types.NamespacedName) (string, error) {
	token := time.Now().UTC().Format(time.RFC3339Nano)
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, berthv1.SyncRequestedAnnotation, token))
	app := &berthv1.Application{}
	app.Namespace, app.Name = key.Namespace, key.Name
	if err := c.Patch(ctx, app, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return "", fmt.Errorf("requesting sync of %s: %w", key, err)
	}
	return token, nil
}

// WaitSync waits until the agent handled request token and the Application
// is Ready (nil) or Stalled (an error with the agent's message).
func WaitSync(ctx context.Context, c client.Client, key types.NamespacedName, token string) (*berthv1.Application, error) {
	for {
		app := &berthv1.Application{}
		if err := c.Get(ctx, key, app); err != nil {
			return nil, fmt.Errorf("reading %s: %w", key, err)
		}
		if covers(app.Status.LastHandledSyncRequest, token) {
			if done, err := settled(app); done {
				return app, err
			}
		}
		select {
		case <-ctx.Done():
			return app, fmt.Errorf("waiting for %s: %w", key, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// covers reports whether the request the agent handled last answers the
// request token: it is token, or a later request (two `berth sync` at
// once: the agent handles the annotation as it finds it, the later one,
// with a sync that began after both were made).
func covers(handled, token string) bool {
	if handled == token {
		return true
	}
	h, err1 := time.Parse(time.RFC3339Nano, handled)
	t, err2 := time.Parse(time.RFC3339Nano, token)
	return err1 == nil && err2 == nil && h.After(t)
}

// settled reports whether app came to rest: Ready (nil), Stalled, a
// failed apply (retried by the agent) or failing its health check (an
// error with the agent's message).
func settled(app *berthv1.Application) (bool, error) {
	if s := meta.FindStatusCondition(app.Status.Conditions, berthv1.ConditionStalled); s != nil && s.Status == "True" {
		return true, fmt.Errorf("sync failed: %s", s.Message)
	}
	r := meta.FindStatusCondition(app.Status.Conditions, berthv1.ConditionReady)
	if r != nil && r.Status == "True" {
		return true, nil
	}
	if r != nil && r.Reason == "HealthCheckFailed" {
		return true, fmt.Errorf("applied but unhealthy: %s", r.Message)
	}
	if r != nil && r.Status == "False" && r.Reason == "ApplyFailed" {
		return true, fmt.Errorf("sync failed (the agent retries it): %s", r.Message)
	}
	return false, nil
}
