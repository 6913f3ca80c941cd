package oci_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/internal/oci"
	"github.com/berth-dev/berth/internal/testenv"
)

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func diffIDs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

func sameImage(t *testing.T, want, got v1.Image) {
	t.Helper()
	w, g := diffIDs(t, want), diffIDs(t, got)
	if len(w) != len(g) {
		t.Fatalf("got %d layers, want %d", len(g), len(w))
	}
	for i := range w {
		if w[i] != g[i] {
			t.Errorf("layer %d: got %s, want %s", i, g[i], w[i])
		}
	}
}

func TestOpenRegistry(t *testing.T) {
	reg := testenv.NewRegistry(t)
	img := randomImage(t)
	ref := reg.Host + "/team/app:1.0"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	got, src, err := oci.Open(context.Background(), ref, oci.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if src.Kind != oci.KindRegistry || src.Digest != want.String() || src.Ref != ref || len(src.LayerSizes) != 2 {
		t.Errorf("source %+v, want registry digest %s", src, want)
	}
	sameImage(t, img, got)

	// Explicit credentials are sent (the test registry accepts any).
	if _, _, err := oci.Open(context.Background(), "docker://"+ref, oci.Options{Insecure: true, Username: "u", Password: "p"}); err != nil {
		t.Errorf("with credentials: %v", err)
	}
	// A missing tag and a registry that is gone are clear errors.
	if _, _, err := oci.Open(context.Background(), reg.Host+"/team/app:nope", oci.Options{Insecure: true}); err == nil || !strings.Contains(err.Error(), "fetching image") {
		t.Errorf("missing tag: %v", err)
	}
	reg.Close()
	if _, _, err := oci.Open(context.Background(), ref, oci.Options{Insecure: true}); err == nil {
		t.Error("closed registry: no error")
	}
}

func TestOpenLayout(t *testing.T) {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	a, b := randomImage(t), randomImage(t)
	if err := p.AppendImage(a, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "a"})); err != nil {
		t.Fatal(err)
	}
	got, src, err := oci.Open(context.Background(), dir, oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantDigest, _ := a.Digest()
	if src.Kind != oci.KindLayout || src.Digest != wantDigest.String() || len(src.LayerSizes) != 2 {
		t.Errorf("source %+v", src)
	}
	sameImage(t, a, got)

	if err := p.AppendImage(b, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "b"})); err != nil {
		t.Fatal(err)
	}
	if _, _, err := oci.Open(context.Background(), dir, oci.Options{}); !errors.Is(err, oci.ErrAmbiguous) {
		t.Errorf("two images, no name: %v, want ErrAmbiguous", err)
	}
	got, _, err = oci.Open(context.Background(), dir+":b", oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameImage(t, b, got)
	if _, _, err := oci.Open(context.Background(), "oci:"+dir+":c", oci.Options{}); err == nil || !strings.Contains(err.Error(), `no image named "c"`) {
		t.Errorf("unknown name: %v", err)
	}
	if _, _, err := oci.Open(context.Background(), "oci:"+t.TempDir(), oci.Options{}); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("empty dir: %v", err)
	}
}

func TestOpenLayoutMultiPlatform(t *testing.T) {
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	dir := t.TempDir()
	if _, err := layout.Write(dir, mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: idx})); err != nil {
		t.Fatal(err)
	}
	got, _, err := oci.Open(context.Background(), dir, oci.Options{Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	sameImage(t, arm, got)
}

func TestOpenTarball(t *testing.T) {
	a, b := randomImage(t), randomImage(t)
	ta, err := name.NewTag("example.test/app:a")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := name.NewTag("example.test/app:b")
	if err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(t.TempDir(), "one.tar")
	if err := tarball.WriteToFile(one, ta, a); err != nil {
		t.Fatal(err)
	}
	got, src, err := oci.Open(context.Background(), one, oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.Kind != oci.KindTarball {
		t.Errorf("source %+v", src)
	}
	sameImage(t, a, got)

	two := filepath.Join(t.TempDir(), "two.tar")
	if err := tarball.MultiWriteToFile(two, map[name.Tag]v1.Image{ta: a, tb: b}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := oci.Open(context.Background(), two, oci.Options{}); !errors.Is(err, oci.ErrAmbiguous) {
		t.Errorf("two images, no tag: %v, want ErrAmbiguous", err)
	}
	got, _, err = oci.Open(context.Background(), "docker-archive:"+two+":example.test/app:b", oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameImage(t, b, got)
	got, _, err = oci.Open(context.Background(), two+":example.test/app:a", oci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameImage(t, a, got)
}

// authRegistry serves a real in-process registry behind basic auth.
func authRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestOpenRegistryAuth(t *testing.T) {
	host := authRegistry(t, "robot", "s3cret-pass")
	ref := host + "/private/app:1"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img := randomImage(t)
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "robot", Password: "s3cret-pass"})); err != nil {
		t.Fatal(err)
	}
	// No credentials anywhere: refused.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	_, _, err = oci.Open(context.Background(), ref, oci.Options{Insecure: true})
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") && !strings.Contains(err.Error(), "401") {
		t.Fatalf("without credentials: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret-pass") {
		t.Errorf("error shows the password: %v", err)
	}
	// Credentials from flags.
	got, _, err := oci.Open(context.Background(), ref, oci.Options{Insecure: true, Username: "robot", Password: "s3cret-pass"})
	if err != nil {
		t.Fatal(err)
	}
	sameImage(t, img, got)
	// Credentials from the Docker config.
	cfg := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("robot:s3cret-pass"))
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfg)
	got, _, err = oci.Open(context.Background(), ref, oci.Options{Insecure: true})
	if err != nil {
		t.Fatalf("with the Docker config: %v", err)
	}
	sameImage(t, img, got)
	// Wrong flags win over the config, and fail.
	if _, _, err := oci.Open(context.Background(), ref, oci.Options{Insecure: true, Username: "robot", Password: "wrong"}); err == nil {
		t.Error("wrong password: no error")
	}
}
