package webhook

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	secret := []byte("s3cret-value")
	token := []byte("gitlab-t0ken")
	var got []string
	var logs bytes.Buffer
	h := NewHandler(Secrets{GitHub: Fixed(secret), GitLab: Fixed(token), Generic: Fixed(secret)},
		func(_ context.Context, urls []string) (int, error) { got = urls; return 1, nil },
		slog.New(slog.NewTextHandler(&logs, nil)))
	srv := httptest.NewServer(h)
	defer srv.Close()

	gh := []byte(`{"repository":{"clone_url":"https://git.example.test/org/repo.git","ssh_url":"git@git.example.test:org/repo.git"}}`)
	gl := []byte(`{"project":{"git_http_url":"https://gitlab.example.test/g/p.git"}}`)
	gen := []byte(`{"url":"http://127.0.0.1/x.git"}`)
	tests := []struct {
		name    string
		path    string
		body    []byte
		headers map[string]string
		want    int
		wantURL string
	}{
		{"github ok", "/hooks/github", gh, map[string]string{"X-Hub-Signature-256": Sign(secret, gh)}, 202, "https://git.example.test/org/repo.git"},
		{"github ping", "/hooks/github", gh, map[string]string{"X-Hub-Signature-256": Sign(secret, gh), "X-GitHub-Event": "ping"}, 200, ""},
		{"github unsigned", "/hooks/github", gh, nil, 401, ""},
		{"github wrong secret", "/hooks/github", gh, map[string]string{"X-Hub-Signature-256": Sign([]byte("other"), gh)}, 401, ""},
		{"github tampered body", "/hooks/github", append([]byte(" "), gh...), map[string]string{"X-Hub-Signature-256": Sign(secret, gh)}, 401, ""},
		{"github not hex", "/hooks/github", gh, map[string]string{"X-Hub-Signature-256": "sha256=zz"}, 401, ""},
		{"github tag push", "/hooks/github", gh, map[string]string{"X-Hub-Signature-256": Sign(secret, gh), "X-GitHub-Event": "push"}, 202, "https://git.example.test/org/repo.git"},
		{"github issue comment", "/hooks/github", gh, map[string]string{"X-Hub-Signature-256": Sign(secret, gh), "X-GitHub-Event": "issue_comment"}, 200, ""},
		{"github star, unsigned", "/hooks/github", gh, map[string]string{"X-GitHub-Event": "star"}, 401, ""},
		{"gitlab ok", "/hooks/gitlab", gl, map[string]string{"X-Gitlab-Token": string(token)}, 202, "https://gitlab.example.test/g/p.git"},
		{"gitlab tag push", "/hooks/gitlab", gl, map[string]string{"X-Gitlab-Token": string(token), "X-Gitlab-Event": "Tag Push Hook"}, 202, "https://gitlab.example.test/g/p.git"},
		{"gitlab merge request", "/hooks/gitlab", gl, map[string]string{"X-Gitlab-Token": string(token), "X-Gitlab-Event": "Merge Request Hook"}, 200, ""},
		{"gitlab system push", "/hooks/gitlab", glSystem("push"), map[string]string{"X-Gitlab-Token": string(token), "X-Gitlab-Event": "System Hook"}, 202, "https://gitlab.example.test/g/p.git"},
		{"gitlab system merge request", "/hooks/gitlab", glSystem("merge_request"), map[string]string{"X-Gitlab-Token": string(token), "X-Gitlab-Event": "System Hook"}, 200, ""},
		{"gitlab note, wrong token", "/hooks/gitlab", gl, map[string]string{"X-Gitlab-Token": "nope", "X-Gitlab-Event": "Note Hook"}, 401, ""},
		{"gitlab wrong token", "/hooks/gitlab", gl, map[string]string{"X-Gitlab-Token": "nope"}, 401, ""},
		{"gitlab with the HMAC secret", "/hooks/gitlab", gl, map[string]string{"X-Gitlab-Token": string(secret)}, 401, ""},
		{"generic ok", "/hooks/generic", gen, map[string]string{"X-Berth-Signature": Sign(secret, gen)}, 202, "http://127.0.0.1/x.git"},
		{"generic unsigned", "/hooks/generic", gen, nil, 401, ""},
		{"generic no url", "/hooks/generic", []byte(`{}`), map[string]string{"X-Berth-Signature": Sign(secret, []byte(`{}`))}, 400, ""},
		{"oversized", "/hooks/generic", bytes.Repeat([]byte("x"), maxBody+10), map[string]string{"X-Berth-Signature": Sign(secret, gen)}, 413, ""},
		{"oversized, unsigned", "/hooks/generic", bytes.Repeat([]byte("x"), maxBody+10), nil, 401, ""},
		{"github signature too short", "/hooks/github", gh, map[string]string{"X-Hub-Signature-256": "sha256=abcd"}, 401, ""},
		{"wrong method", "/hooks/github", nil, nil, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			method := http.MethodPost
			if tt.name == "wrong method" {
				method = http.MethodGet
			}
			req, _ := http.NewRequestWithContext(context.Background(), method, srv.URL+tt.path, bytes.NewReader(tt.body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.wantURL != "" && (len(got) == 0 || got[0] != tt.wantURL) {
				t.Errorf("triggered %v, want %s first", got, tt.wantURL)
			}
			if (tt.want == 401 || tt.want == 200) && got != nil {
				t.Errorf("a rejected or ignored call triggered %v", got)
			}
		})
	}
	if strings.Contains(logs.String(), string(secret)) || strings.Contains(logs.String(), string(token)) {
		t.Error("a secret appears in the logs")
	}
	if !strings.Contains(logs.String(), "webhook rejected") {
		t.Error("rejections are not logged")
	}
}

// countingBody counts what a handler read of a request's body.
type countingBody struct {
	r io.Reader
	n int
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += n
	return n, err
}

// A call without a well-formed signature is refused before its body is
// read: an unauthenticated caller gets no buffer of up to 1 MiB.
func TestUnsignedCallsAreRefusedBeforeTheirBodyIsRead(t *testing.T) {
	secret := []byte("s3cret-value")
	h := NewHandler(Secrets{GitHub: Fixed(secret), Generic: Fixed(secret)},
		func(context.Context, []string) (int, error) { return 1, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, tt := range []struct{ path, header, value string }{
		{"/hooks/github", "", ""},
		{"/hooks/github", "X-Hub-Signature-256", "sha1=abcd"},
		{"/hooks/generic", "", ""},
		{"/hooks/generic", "X-Berth-Signature", "sha256=" + strings.Repeat("0", 10)},
	} {
		body := &countingBody{r: bytes.NewReader(bytes.Repeat([]byte("x"), 512<<10))}
		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, tt.path, body)
		if tt.header != "" {
			req.Header.Set(tt.header, tt.value)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || body.n != 0 {
			t.Errorf("%s %s=%q: status %d, %d bytes read; want 401, none read", tt.path, tt.header, tt.value, rec.Code, body.n)
		}
	}
}

// Requests beyond the limit wait a moment for a slot, then are answered
// 503, not queued with their bodies; a slot freed while one waits is
// taken.
func TestLimitInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := limitInFlight(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusAccepted)
	}), 1)
	serve := func() chan int {
		code := make(chan int, 1)
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/hooks/generic", nil))
			code <- rec.Code
		}()
		return code
	}
	first := serve()
	<-entered
	// Waits slotWait, then 503.
	second := httptest.NewRecorder()
	h.ServeHTTP(second, httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/hooks/generic", nil))
	if second.Code != http.StatusServiceUnavailable || second.Header().Get("Retry-After") == "" {
		t.Errorf("second request: %d, Retry-After %q; want 503 with Retry-After", second.Code, second.Header().Get("Retry-After"))
	}
	third := serve() // waits for the slot
	release <- struct{}{}
	if c := <-first; c != http.StatusAccepted {
		t.Errorf("first request: %d, want 202", c)
	}
	<-entered
	release <- struct{}{}
	if c := <-third; c != http.StatusAccepted {
		t.Errorf("third request, which waited for the slot: %d, want 202", c)
	}
}

// A caller holding a slot by sending its body slowly loses it after
// bodyTime: the body read fails, and the slot is free for a real delivery.
func TestASlowBodyGivesItsSlotBack(t *testing.T) {
	read := make(chan error, 1)
	srv := httptest.NewServer(limitInFlight(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	}), 1))
	defer srv.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/hooks/generic", pr)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	go func() { _, _ = pw.Write([]byte("{")) }() // then nothing, for longer than bodyTime
	if err := <-read; err == nil {
		t.Fatal("the body of a caller that stopped sending was read whole")
	}
}

func TestDisabledEndpoint(t *testing.T) {
	h := NewHandler(Secrets{}, func(context.Context, []string) (int, error) { return 0, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/github", strings.NewReader("{}")))
	if rec.Code != http.StatusNotFound {
		t.Errorf("endpoint without a secret = %d, want 404", rec.Code)
	}
}

// A GitLab token equal to the HMAC secret turns every endpoint off: GitLab
// sends it in clear on every push, and it would sign GitHub and generic
// calls. The caller is not told why; the log says.
func TestGitLabTokenMustDifferFromTheHMACSecret(t *testing.T) {
	secret := Fixed([]byte("shared"))
	var logs bytes.Buffer
	fired := false
	h := NewHandler(Secrets{GitHub: secret, GitLab: secret, Generic: secret},
		func(context.Context, []string) (int, error) { fired = true; return 1, nil },
		slog.New(slog.NewTextHandler(&logs, nil)))
	gl := `{"project":{"git_http_url":"https://x.test/p.git"}}`
	gen := `{"url":"https://x.test/p.git"}`
	for _, c := range []struct{ path, body, header, value string }{
		{"/hooks/gitlab", gl, "X-Gitlab-Token", "shared"},
		{"/hooks/github", gen, "X-Hub-Signature-256", Sign([]byte("shared"), []byte(gen))},
		{"/hooks/generic", gen, "X-Berth-Signature", Sign([]byte("shared"), []byte(gen))},
	} {
		req := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
		req.Header.Set(c.header, c.value)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || fired || strings.Contains(rec.Body.String(), "HMAC") {
			t.Errorf("%s with the shared secret = %d %q (triggered: %v), want 404 without the reason, nothing triggered", c.path, rec.Code, rec.Body.String(), fired)
		}
	}
	if !strings.Contains(logs.String(), "equals the HMAC secret") {
		t.Errorf("the log does not say why: %s", logs.String())
	}
}

// A secret file is read again when it changes, as a mounted Kubernetes
// Secret does when it is created or rotated; a missing file, or one too
// large to be a secret, disables the endpoint.
func TestFileSecretFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hmac")
	s := File(path)
	if got := s(); got != nil {
		t.Fatalf("missing file = %q, want nil", got)
	}
	write := func(v string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour)
	write("first\n", t0)
	if got := string(s()); got != "first" {
		t.Fatalf("secret = %q, want first (newline dropped)", got)
	}
	write("second", t0.Add(time.Second))
	if got := string(s()); got != "second" {
		t.Fatalf("after rotation = %q, want second", got)
	}
	write(strings.Repeat("x", maxSecret+1), t0.Add(2*time.Second))
	if got := s(); got != nil {
		t.Fatalf("oversized file = %d bytes, want nil", len(got))
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := s(); got != nil {
		t.Fatalf("removed file = %q, want nil", got)
	}
	var logs bytes.Buffer
	h := NewHandler(Secrets{GitHub: s}, func(context.Context, []string) (int, error) { return 1, nil }, slog.New(slog.NewTextHandler(&logs, nil)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/github", strings.NewReader("{}")))
	if rec.Code != http.StatusNotFound || !strings.Contains(logs.String(), "no secret configured") {
		t.Errorf("GitHub without its secret file = %d, log %q; want 404 and the reason logged", rec.Code, logs.String())
	}
}

// glSystem is the body of a GitLab system hook call for event.
func glSystem(event string) []byte {
	return []byte(`{"event_name":"` + event + `","project":{"git_http_url":"https://gitlab.example.test/g/p.git"}}`)
}
