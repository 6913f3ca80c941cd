package rehearsal

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/controller/application"
)

// scratchName returns a fresh scratch namespace name for app:
// berth-rehearse-<app>-<random>, at most 63 characters.
func scratchName(app string) string {
	const prefix, suffix = "berth-rehearse-", 6 // "-" + 5 random
	if room := 63 - len(prefix) - suffix; len(app) > room {
		app = app[:room]
	}
	return prefix + app + "-" + rand.String(5)
}

// createScratch creates the scratch namespace of a drill of app from one
// release to another.
func createScratch(ctx context.Context, c client.Client, app *berthv1.Application, from, to int64, now time.Time) (string, error) {
	name := scratchName(app.Name)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			DrillLabel:                     name,
			AppLabel:                       application.LabelValue(app.Name),
			AppNamespaceLabel:              app.Namespace,
			"app.kubernetes.io/managed-by": "berth",
		},
		Annotations: map[string]string{
			ExpiresAnnotation:  now.Add(keepFor).UTC().Format(time.RFC3339),
			ReleasesAnnotation: fmt.Sprintf("%d->%d", from, to),
		},
	}}
	if err := c.Create(ctx, ns); err != nil {
		return "", fmt.Errorf("creating scratch namespace %s: %w", name, err)
	}
	return name, nil
}

// deleteScratch deletes the scratch namespace and waits up to timeout for
// it to be gone. It reports whether it is gone.
func deleteScratch(ctx context.Context, c client.Client, name string, timeout time.Duration) (bool, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("deleting scratch namespace %s: %w", name, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := c.Get(ctx, client.ObjectKey{Name: name}, ns)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// sweep deletes app's scratch namespaces whose expiry has passed (left by
// --keep or a drill that was killed). It is best effort: a caller who may
// not list namespaces simply leaves them.
func sweep(ctx context.Context, c client.Client, app *berthv1.Application, now time.Time, out io.Writer) {
	var l corev1.NamespaceList
	if err := c.List(ctx, &l, client.MatchingLabels{AppLabel: application.LabelValue(app.Name), AppNamespaceLabel: app.Namespace}); err != nil {
		return
	}
	for i := range l.Items {
		ns := &l.Items[i]
		exp, err := time.Parse(time.RFC3339, ns.Annotations[ExpiresAnnotation])
		if err != nil || now.Before(exp) || ns.DeletionTimestamp != nil {
			continue
		}
		if err := c.Delete(ctx, ns); err == nil {
			fmt.Fprintf(out, "deleted expired scratch namespace %s\n", ns.Name)
		}
	}
}
