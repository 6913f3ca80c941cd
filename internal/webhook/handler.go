package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// maxBody bounds a webhook payload.
const maxBody = 1 << 20

// Secrets are the shared secrets per endpoint, read at each request; a nil
// or empty secret disables that endpoint (it answers 404). GitLab sends its
// token in clear, so while the GitLab token equals the GitHub or generic
// secret every endpoint is off: whoever saw one GitLab delivery could
// otherwise sign GitHub and generic calls.
type Secrets struct {
	GitHub  Secret
	GitLab  Secret
	Generic Secret
}

// current returns each endpoint's secret now, and why an empty one is
// empty.
func (h *handler) current() (github, gitlab, generic []byte, why string) {
	github, gitlab, generic = h.secrets.GitHub.get(), h.secrets.GitLab.get(), h.secrets.Generic.get()
	for _, s := range [][]byte{github, generic} {
		if len(gitlab) > 0 && len(s) > 0 && subtle.ConstantTimeCompare(gitlab, s) == 1 {
			return nil, nil, nil, "the GitLab token equals the HMAC secret, and GitLab sends it in clear: every endpoint is off until they differ"
		}
	}
	return github, gitlab, generic, "no secret configured"
}

// get returns s's current value; nil when s is not set.
func (s Secret) get() []byte {
	if s == nil {
		return nil
	}
	return s()
}

// Trigger fetches now for the Applications on any of urls and returns how
// many matched.
type Trigger func(ctx context.Context, urls []string) (int, error)

// NewHandler returns the webhook receiver.
func NewHandler(secrets Secrets, trigger Trigger, log *slog.Logger) http.Handler {
	h := &handler{secrets: secrets, trigger: trigger, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/github", h.github)
	mux.HandleFunc("POST /hooks/gitlab", h.gitlab)
	mux.HandleFunc("POST /hooks/generic", h.generic)
	return limitInFlight(mux, maxInFlight)
}

// maxInFlight bounds the requests served at once: each may buffer a
// payload of up to maxBody before its signature is checked, and a Git
// host sends a push's deliveries one by one.
const maxInFlight = 32

// slotWait is how long a request waits for a slot before it is answered
// 503, and bodyTime how long it may take to send its body once it has one:
// a caller that holds a slot by sending slowly (a signature header of the
// right form passes without the secret) lets it go within bodyTime, so a
// Git host's delivery, which times out after 10 s, gets through.
const (
	slotWait = 2 * time.Second
	bodyTime = 5 * time.Second
)

// limitInFlight serves at most n requests at once, each with bodyTime to
// send its body; one that waits slotWait for a slot is answered 503
// (Retry-After), rather than its body buffered.
func limitInFlight(next http.Handler, n int) http.Handler {
	slots := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait := time.NewTimer(slotWait)
		defer wait.Stop()
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			// Not every ResponseWriter can (a test's recorder): then the
			// server's own ReadTimeout bounds the body.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTime))
			next.ServeHTTP(w, r)
		case <-wait.C:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many webhook requests at once", http.StatusServiceUnavailable)
		case <-r.Context().Done():
		}
	})
}

type handler struct {
	secrets Secrets
	trigger Trigger
	log     *slog.Logger
}

func (h *handler) read(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "payload unreadable or larger than 1 MiB", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	return body, true
}

func (h *handler) deny(w http.ResponseWriter, r *http.Request, hook, reason string) {
	h.log.Warn("webhook rejected", "hook", hook, "remote", r.RemoteAddr, "reason", reason)
	http.Error(w, "invalid signature", http.StatusUnauthorized)
}

// disabled answers 404 for an endpoint without a usable secret, and logs
// why (the caller is not told), so that a missing Secret is found from the
// agent's log.
func (h *handler) disabled(w http.ResponseWriter, r *http.Request, hook, reason string) {
	h.log.Warn("webhook endpoint disabled", "hook", hook, "remote", r.RemoteAddr, "reason", reason)
	http.Error(w, "endpoint disabled", http.StatusNotFound)
}

// signed reads the body and checks its HMAC-SHA256 signature in header;
// it answers the request itself (413, 401) when it returns false.
func (h *handler) signed(w http.ResponseWriter, r *http.Request, hook, header string, secret []byte) ([]byte, bool) {
	// The header is checked before the body is read: a caller without
	// one gets no buffer.
	sig := r.Header.Get(header)
	if sig == "" {
		h.deny(w, r, hook, "missing "+header)
		return nil, false
	}
	if _, ok := parseSignature(sig); !ok {
		h.deny(w, r, hook, "malformed "+header)
		return nil, false
	}
	body, ok := h.read(w, r)
	if !ok {
		return nil, false
	}
	if !validHMAC(secret, body, sig) {
		h.deny(w, r, hook, "signature mismatch")
		return nil, false
	}
	return body, true
}

// parseSignature returns the digest of a "sha256=<hex>" header.
func parseSignature(header string) ([]byte, bool) {
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return nil, false
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return nil, false
	}
	return got, true
}

// validHMAC reports whether header is "sha256=<hex>" of body under secret.
func validHMAC(secret, body []byte, header string) bool {
	got, ok := parseSignature(header)
	if !ok {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

func (h *handler) github(w http.ResponseWriter, r *http.Request) {
	secret, _, _, why := h.current()
	if len(secret) == 0 {
		h.disabled(w, r, "github", why)
		return
	}
	body, ok := h.signed(w, r, "github", "X-Hub-Signature-256", secret)
	if !ok {
		return
	}
	switch ev := r.Header.Get("X-GitHub-Event"); ev {
	case "ping":
		writeJSON(w, http.StatusOK, map[string]any{"pong": true})
		return
	case "", "push": // a push of branches or tags; no header: a sender other than GitHub
	default:
		h.ignore(w, "github", ev)
		return
	}
	var p struct {
		Repository struct {
			CloneURL string `json:"clone_url"`
			HTMLURL  string `json:"html_url"`
			SSHURL   string `json:"ssh_url"`
			GitURL   string `json:"git_url"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "invalid JSON payload", http.StatusBadRequest)
		return
	}
	rp := p.Repository
	h.fire(w, r, "github", rp.CloneURL, rp.HTMLURL, rp.SSHURL, rp.GitURL)
}

func (h *handler) gitlab(w http.ResponseWriter, r *http.Request) {
	_, token, _, why := h.current()
	if len(token) == 0 {
		h.disabled(w, r, "gitlab", why)
		return
	}
	tok := r.Header.Get("X-Gitlab-Token")
	if tok == "" {
		h.deny(w, r, "gitlab", "missing X-Gitlab-Token")
		return
	}
	if subtle.ConstantTimeCompare([]byte(tok), token) != 1 {
		h.deny(w, r, "gitlab", "token mismatch")
		return
	}
	ev := r.Header.Get("X-Gitlab-Event")
	switch ev {
	case "", "Push Hook", "Tag Push Hook", "System Hook":
	default:
		h.ignore(w, "gitlab", ev)
		return
	}
	body, ok := h.read(w, r)
	if !ok {
		return
	}
	var p struct {
		// A system hook sends every kind of event under one header; the
		// body says which.
		EventName string `json:"event_name"`
		Project   struct {
			HTTP string `json:"git_http_url"`
			SSH  string `json:"git_ssh_url"`
			Web  string `json:"web_url"`
		} `json:"project"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "invalid JSON payload", http.StatusBadRequest)
		return
	}
	if ev == "System Hook" && p.EventName != "push" && p.EventName != "tag_push" {
		h.ignore(w, "gitlab", ev+": "+p.EventName)
		return
	}
	h.fire(w, r, "gitlab", p.Project.HTTP, p.Project.SSH, p.Project.Web)
}

func (h *handler) generic(w http.ResponseWriter, r *http.Request) {
	_, _, secret, why := h.current()
	if len(secret) == 0 {
		h.disabled(w, r, "generic", why)
		return
	}
	body, ok := h.signed(w, r, "generic", "X-Berth-Signature", secret)
	if !ok {
		return
	}
	var p struct {
		URL  string   `json:"url"`
		URLs []string `json:"urls"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "invalid JSON payload", http.StatusBadRequest)
		return
	}
	h.fire(w, r, "generic", append(p.URLs, p.URL)...)
}

// ignore answers a verified call for an event other than a push (an
// issue comment, a star, a merge request): nothing in Git changed, so
// nothing is fetched. Git hosts that send every event cost nothing more.
func (h *handler) ignore(w http.ResponseWriter, hook, event string) {
	h.log.Debug("webhook event ignored", "hook", hook, "event", event)
	writeJSON(w, http.StatusOK, map[string]any{"ignored": event})
}

func (h *handler) fire(w http.ResponseWriter, r *http.Request, hook string, urls ...string) {
	var clean []string
	for _, u := range urls {
		if u != "" {
			clean = append(clean, u)
		}
	}
	if len(clean) == 0 {
		http.Error(w, "payload names no repository", http.StatusBadRequest)
		return
	}
	n, err := h.trigger(r.Context(), clean)
	if err != nil {
		h.log.Error("webhook trigger failed", "hook", hook, "error", err.Error())
		http.Error(w, fmt.Sprintf("trigger failed: %v", err), http.StatusInternalServerError)
		return
	}
	h.log.Info("webhook accepted", "hook", hook, "matched", n)
	writeJSON(w, http.StatusAccepted, map[string]any{"matched": n})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Sign returns the "sha256=<hex>" signature of body under secret, as senders
// compute it.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
