package testenv

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is a real OCI distribution registry (go-containerregistry's
// pkg/registry) served over plain HTTP on loopback.
type Registry struct {
	// Host is host:port, usable in image references ("HOST/repo:tag").
	Host string
	srv  *httptest.Server
}

// NewRegistry starts a registry that lives until t ends.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), srv: srv}
}

// Close stops the registry, so tests can simulate an unreachable registry.
func (r *Registry) Close() { r.srv.Close() }
