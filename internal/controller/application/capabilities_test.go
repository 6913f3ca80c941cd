package application

import (
	"errors"
	"net/url"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// A read a chart's render needs is retried when its failure may pass, and
// rejects the revision otherwise.
func TestClusterReadErr(t *testing.T) {
	secrets := schema.GroupResource{Resource: "secrets"}
	for _, tc := range []struct {
		err       error
		transient bool
	}{
		{apierrors.NewServiceUnavailable("restarting"), true},
		{apierrors.NewTooManyRequests("slow down", 1), true},
		{apierrors.NewTimeoutError("timeout", 1), true},
		{apierrors.NewInternalError(errors.New("etcd")), true},
		{&url.Error{Op: "Get", URL: "https://api", Err: syscall.ECONNREFUSED}, true},
		{apierrors.NewForbidden(secrets, "pw", errors.New("no")), false},
		{apierrors.NewUnauthorized("who"), false},
		{apierrors.NewBadRequest("bad"), false},
		{errors.New(`no matches for kind "Widget" in version "example.test/v1"`), false},
		{errors.New("unexpected GroupVersion string: a/b/c"), false},
	} {
		if got := errors.Is(clusterReadErr(tc.err), errClusterRead); got != tc.transient {
			t.Errorf("%v: retried = %v, want %v", tc.err, got, tc.transient)
		}
		if !errors.Is(clusterReadErr(tc.err), tc.err) {
			t.Errorf("%v: the cause is lost", tc.err)
		}
	}
}
