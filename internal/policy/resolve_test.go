package policy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/internal/testenv"
)

// push writes a fresh random image to ref and returns its digest.
func push(t *testing.T, ref string, opts ...remote.Option) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func podYAML(images ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: prod\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n")
	b.WriteString("      initContainers:\n      - name: init\n        image: " + images[0] + "\n")
	b.WriteString("      containers:\n")
	for i, img := range images[1:] {
		fmt.Fprintf(&b, "      - name: c%d\n        image: %s\n", i, img)
	}
	b.WriteString("      ephemeralContainers:\n      - name: debug\n        image: " + images[0] + "\n")
	return b.String()
}

func imagesOf(t *testing.T, res *Resolution) []string {
	t.Helper()
	pod, err := podOf(&res.Objects[0])
	if err != nil || pod == nil {
		t.Fatalf("pod: %v", err)
	}
	var out []string
	for _, c := range containers(pod.Spec) {
		out = append(out, c.Image)
	}
	return out
}

func TestResolveTagMoved(t *testing.T) {
	ctx := context.Background()
	reg := testenv.NewRegistry(t)
	app := reg.Host + "/team/app:1.0"
	tools := reg.Host + "/tools:2"
	d1 := push(t, app)
	dTools := push(t, tools)
	pinnedElsewhere := reg.Host + "/other:9@sha256:" + strings.Repeat("4", 64)

	objs := parseString(t, podYAML(tools, app, pinnedElsewhere))
	r, err := NewResolver(ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(ctx, objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantImages := []string{tools + "@" + dTools, app + "@" + d1, pinnedElsewhere, tools + "@" + dTools}
	if got := imagesOf(t, res); strings.Join(got, " ") != strings.Join(wantImages, " ") {
		t.Errorf("images = %v, want %v", got, wantImages)
	}
	if got := objs[0].Object.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]; got != app {
		t.Errorf("input was modified: %v", got)
	}
	appKey, _ := TagKey(app)
	if res.Tags[appKey] != d1 || len(res.Moved) != 0 {
		t.Fatalf("tags = %v, moved = %v", res.Tags, res.Moved)
	}
	rep, err := Evaluate(ctx, objs, allEnforced(), WithResolution(res))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		if v.RuleID == RuleImageDigestRequired || v.RuleID == RuleImageTagMoved {
			t.Errorf("resolved images reported: %s", v)
		}
	}

	// Re-push the tag: it now points to different content.
	d2 := push(t, app)
	if d2 == d1 {
		t.Fatal("random images collided")
	}
	res2, err := r.Resolve(ctx, objs, res.Tags)
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Moved) != 1 || res2.Moved[0] != (MovedTag{Tag: appKey, Previous: d1, Current: d2}) {
		t.Fatalf("moved = %+v, want %s from %s to %s", res2.Moved, appKey, d1, d2)
	}
	rep, err = Evaluate(ctx, objs, Config{}, WithResolution(res2))
	if err != nil {
		t.Fatal(err)
	}
	var moved []Violation
	for _, v := range rep.Violations {
		if v.RuleID == RuleImageTagMoved {
			moved = append(moved, v)
		}
	}
	if len(moved) != 1 || !rep.Blocked() || !strings.Contains(moved[0].Message, d1) || !strings.Contains(moved[0].Message, d2) {
		t.Fatalf("tag-moved violations = %+v, want one naming %s and %s", moved, d1, d2)
	}
}

func TestResolveUnreachable(t *testing.T) {
	reg := testenv.NewRegistry(t)
	app := reg.Host + "/app:1"
	push(t, app)
	reg.Close()
	objs := parseString(t, podYAML(app, app))
	r, _ := NewResolver(ImageConfig{})
	res, err := r.Resolve(context.Background(), objs, nil)
	if !errors.Is(err, ErrRegistryUnreachable) {
		t.Fatalf("err = %v, want ErrRegistryUnreachable", err)
	}
	var re *ResolveError
	if !errors.As(err, &re) || !strings.Contains(re.Image, "/app:1") {
		t.Fatalf("err = %#v, want a ResolveError naming the image", err)
	}
	if got := imagesOf(t, res); got[1] != app {
		t.Errorf("unresolved image rewritten to %s", got[1])
	}
	cfg := Config{Rules: map[string]RuleConfig{RuleImageDigestRequired: {Mode: ModeEnforce}}}
	rep, err := Evaluate(context.Background(), objs, cfg, WithResolution(res))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.DigestsRequired() || !rep.Blocked() {
		t.Errorf("unresolved tags with digests required must block: %s", rep.Summary())
	}
}

// A tag that fails to resolve keeps the digest given as sticky (the one
// the applied revision runs with): a registry down for a moment does not
// turn what runs back into a tag.
func TestResolveUnreachableKeepsStickyDigest(t *testing.T) {
	reg := testenv.NewRegistry(t)
	app := reg.Host + "/app:1"
	d := push(t, app)
	reg.Close()
	objs := parseString(t, podYAML(app, app))
	key, err := TagKey(app)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewResolver(ImageConfig{})
	r.Sticky = map[string]string{key: d}
	res, err := r.Resolve(context.Background(), objs, map[string]string{key: d})
	if err != nil {
		t.Fatalf("err = %v, want the sticky digest used", err)
	}
	if got := imagesOf(t, res); got[1] != app+"@"+d || len(res.Moved) != 0 {
		t.Errorf("image %s, moved %v; want %s@%s and no move", got[1], res.Moved, app, d)
	}
}

func TestResolveNotFound(t *testing.T) {
	reg := testenv.NewRegistry(t)
	objs := parseString(t, podYAML(reg.Host+"/missing:1", reg.Host+"/missing:1"))
	r, _ := NewResolver(ImageConfig{})
	_, err := r.Resolve(context.Background(), objs, nil)
	if !errors.Is(err, ErrImageNotFound) {
		t.Fatalf("err = %v, want ErrImageNotFound", err)
	}
}

// authRegistry is a real registry behind HTTP basic auth.
func authRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestResolveWithPullSecret(t *testing.T) {
	host := authRegistry(t, "robot", "pull-only-pass")
	app := host + "/private:3"
	d := push(t, app, remote.WithAuth(&authn.Basic{Username: "robot", Password: "pull-only-pass"}))
	objs := parseString(t, podYAML(app, app))

	anon, _ := NewResolver(ImageConfig{})
	if _, err := anon.Resolve(context.Background(), objs, nil); !errors.Is(err, ErrRegistryDenied) {
		t.Fatalf("anonymous: err = %v, want ErrRegistryDenied", err)
	}
	secret := fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte("robot:pull-only-pass")))
	r, err := NewResolver(ImageConfig{InsecureRegistries: []string{host}}, []byte(`{"auths":{}}`), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(context.Background(), objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pins[0].Digest != d {
		t.Errorf("pins = %+v, want digest %s", res.Pins, d)
	}
	if _, err := NewResolver(ImageConfig{}, []byte("{not json robot:pull-only-pass")); err == nil || strings.Contains(err.Error(), "pull-only-pass") {
		t.Errorf("malformed secret: err = %v, want an error that does not quote it", err)
	}
}
