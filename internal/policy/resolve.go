package policy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/berth-dev/berth/internal/manifest"
)

// Errors a caller branches on; ResolveError wraps one of them.
var (
	// ErrRegistryUnreachable: the registry did not answer (network error,
	// timeout, 5xx). The agent holds the sync rather than apply tags when
	// digests are required.
	ErrRegistryUnreachable = errors.New("registry unreachable")
	// ErrImageNotFound: the registry answered that the tag does not exist.
	ErrImageNotFound = errors.New("image not found")
	// ErrRegistryDenied: the registry refused the credentials (401/403).
	ErrRegistryDenied = errors.New("registry denied access")
)

// ResolveError is the failure to resolve one image tag.
type ResolveError struct {
	// Image is the canonical tag (see TagKey).
	Image string
	// Kind is ErrRegistryUnreachable, ErrImageNotFound or ErrRegistryDenied.
	Kind error
	// Err is the underlying error (it never holds credentials).
	Err error
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("resolving %s: %v: %v", e.Image, e.Kind, e.Err)
}

// Unwrap returns both the kind and the cause.
func (e *ResolveError) Unwrap() []error { return []error{e.Kind, e.Err} }

// Pin records how one container image was resolved.
type Pin struct {
	// Object is the object's ID, Container its label (`container "app"`).
	Object    string `json:"object"`
	Container string `json:"container"`
	// Image is the reference as written in Git.
	Image string `json:"image"`
	// Tag is the canonical tag (TagKey), empty for digest-only references.
	Tag string `json:"tag,omitempty"`
	// Digest is the manifest digest ("sha256:...").
	Digest string `json:"digest"`
	// Pinned is the reference applied: repository:tag@digest.
	Pinned string `json:"pinned"`
}

// MovedTag is a tag whose digest differs from the one recorded for it in an
// earlier release.
type MovedTag struct {
	// Tag is the canonical tag (TagKey).
	Tag string `json:"tag"`
	// Previous is the digest recorded earlier; Current the one now served.
	Previous string `json:"previous"`
	Current  string `json:"current"`
}

// Resolution is the outcome of Resolve.
type Resolution struct {
	// Objects are deep copies of the input with every resolved container
	// image rewritten to repository:tag@digest.
	Objects []manifest.Object
	// Pins lists every container image, sorted by object and container.
	Pins []Pin
	// Tags maps each canonical tag to the digest it resolved to: what the
	// release records and passes as previous next time.
	Tags map[string]string
	// Moved lists tags that point elsewhere than recorded in previous.
	Moved []MovedTag
	// resolved holds the images as written that were pinned.
	resolved map[string]bool
}

// pinned reports whether image (as written) was resolved to a digest.
func (r *Resolution) pinned(image string) bool {
	return r != nil && r.resolved[image]
}

// Resolver turns image tags into digests through the registries, using the
// Application's image pull secrets, anonymously otherwise.
type Resolver struct {
	keychain  authn.Keychain
	insecure  ImageConfig
	transport http.RoundTripper
	// Concurrency bounds parallel registry lookups; 0 means 8.
	Concurrency int
	// Cache, when set, remembers lookups so many Applications using one
	// image ask the registry once per TTL.
	Cache *DigestCache
	// CacheScope partitions the cache; the agent uses the Git revision, so
	// a new commit always sees where its tags point now.
	CacheScope string
	// Sticky holds digests to keep for tags that fail to resolve (the
	// agent's: those the applied revision runs with, for that same
	// commit), so a registry that is down for a moment does not turn a
	// running digest back into a tag.
	Sticky map[string]string
}

// DigestCache remembers tag→digest lookups (and failures, for less time).
// It is safe for concurrent use; share one per agent.
type DigestCache struct {
	// TTL for resolved digests; NegativeTTL for failures.
	TTL, NegativeTTL time.Duration
	mu               sync.Mutex
	entries          map[string]cacheEntry
}

type cacheEntry struct {
	digest string
	err    error
	at     time.Time
}

func (c *DigestCache) get(key string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return e, false
	}
	ttl := c.TTL
	if e.err != nil {
		ttl = c.NegativeTTL
	}
	if time.Since(e.at) > ttl {
		delete(c.entries, key)
		return cacheEntry{}, false
	}
	return e, true
}

func (c *DigestCache) put(key, digest string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cacheEntry{}
	}
	c.entries[key] = cacheEntry{digest: digest, err: err, at: time.Now()}
}

// NewResolver builds a Resolver. pullSecrets are the contents of image pull
// Secrets' ".dockerconfigjson" keys; cfg lists registries reached over
// plain HTTP. A malformed secret is an error that never quotes it.
func NewResolver(cfg ImageConfig, pullSecrets ...[]byte) (*Resolver, error) {
	kc, err := newPullSecretKeychain(pullSecrets)
	if err != nil {
		return nil, err
	}
	return &Resolver{keychain: kc, insecure: cfg, transport: remote.DefaultTransport}, nil
}

// Resolve resolves every container, init container and ephemeral container
// image of objs that has a tag and no digest (an untagged image is looked up
// as :latest), pins it, and compares the digests with previous (canonical
// tag → digest from the last release; nil for none). On error the returned
// Resolution still holds every object, with the images that resolved pinned
// and the others unchanged; the error joins one *ResolveError per failed tag.
func (r *Resolver) Resolve(ctx context.Context, objs []manifest.Object, previous map[string]string) (*Resolution, error) {
	type use struct {
		obj  int
		path []string // pod spec path
		c    containerRef
		ref  imageRef
		key  string
	}
	res := &Resolution{Objects: make([]manifest.Object, len(objs)), Tags: map[string]string{}, resolved: map[string]bool{}}
	var uses []use
	keys := map[string]bool{}
	for i := range objs {
		res.Objects[i] = manifest.Object{Object: objs[i].Object.DeepCopy(), Source: objs[i].Source}
		pod, err := podOf(&res.Objects[i])
		if err != nil {
			return nil, &manifest.Error{Source: objs[i].Source, Err: err}
		}
		if pod == nil {
			continue
		}
		for _, c := range containers(pod.Spec) {
			ref := parseImage(c.Image)
			u := use{obj: i, path: pod.Path, c: c, ref: ref}
			if ref.Digest == "" {
				key, err := TagKey(c.Image)
				if err != nil {
					continue // image-invalid-reference reports it
				}
				u.key = key
				keys[key] = true
			}
			uses = append(uses, u)
		}
	}

	digests, errs := r.lookup(ctx, keys)
	for _, u := range uses {
		obj := &res.Objects[u.obj]
		p := Pin{Object: obj.ID(), Container: u.c.label(), Image: u.c.Image}
		if u.ref.Digest != "" {
			p.Digest, p.Pinned = u.ref.Digest, u.c.Image
			if u.ref.Tag != "" {
				p.Tag, _ = TagKey(u.ref.Repo + ":" + u.ref.Tag)
			}
			res.Pins = append(res.Pins, p)
			continue
		}
		d, ok := digests[u.key]
		if !ok {
			continue
		}
		p.Tag, p.Digest = u.key, d
		p.Pinned = u.ref.Repo + "@" + d
		if u.ref.Tag != "" {
			p.Pinned = u.ref.Repo + ":" + u.ref.Tag + "@" + d
		}
		if err := setImage(obj.Object, u.path, u.c, p.Pinned); err != nil {
			return nil, &manifest.Error{Source: obj.Source, Err: err}
		}
		res.Pins = append(res.Pins, p)
		res.Tags[u.key] = d
		res.resolved[u.c.Image] = true
	}
	for key, d := range res.Tags {
		if prev := previous[key]; prev != "" && prev != d {
			res.Moved = append(res.Moved, MovedTag{Tag: key, Previous: prev, Current: d})
		}
	}
	sort.Slice(res.Moved, func(i, j int) bool { return res.Moved[i].Tag < res.Moved[j].Tag })
	sort.SliceStable(res.Pins, func(i, j int) bool {
		if res.Pins[i].Object != res.Pins[j].Object {
			return res.Pins[i].Object < res.Pins[j].Object
		}
		return res.Pins[i].Container < res.Pins[j].Container
	})
	return res, errors.Join(errs...)
}

// lookup resolves each canonical tag once, in parallel.
func (r *Resolver) lookup(ctx context.Context, keys map[string]bool) (map[string]string, []error) {
	var (
		mu      sync.Mutex
		digests = map[string]string{}
		errs    []error
	)
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	g, ctx := errgroup.WithContext(ctx)
	n := r.Concurrency
	if n <= 0 {
		n = 8
	}
	g.SetLimit(n)
	for _, key := range sorted {
		g.Go(func() error {
			var d string
			var err error
			cached := false
			ck := r.CacheScope + "\x00" + key
			if r.Cache != nil {
				var e cacheEntry
				if e, cached = r.Cache.get(ck); cached {
					d, err = e.digest, e.err
				}
			}
			if !cached {
				d, err = r.digest(ctx, key)
				if r.Cache != nil {
					r.Cache.put(ck, d, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && r.Sticky[key] != "" {
				d, err = r.Sticky[key], nil
			}
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			digests[key] = d
			return nil
		})
	}
	_ = g.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return digests, errs
}

// digest asks the registry for the manifest digest of key.
func (r *Resolver) digest(ctx context.Context, key string) (string, error) {
	var nopts []name.Option
	if i := strings.Index(key, "/"); i > 0 && r.insecure.insecure(key[:i]) {
		nopts = append(nopts, name.Insecure)
	}
	tag, err := name.NewTag(key, nopts...)
	if err != nil {
		return "", &ResolveError{Image: key, Kind: ErrImageNotFound, Err: err}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(r.keychain)}
	if r.transport != nil {
		opts = append(opts, remote.WithTransport(r.transport))
	}
	desc, err := remote.Head(tag, opts...)
	if err != nil {
		desc2, err2 := remote.Get(tag, opts...) // some registries refuse HEAD
		if err2 != nil {
			return "", &ResolveError{Image: key, Kind: classify(err2), Err: err2}
		}
		return desc2.Digest.String(), nil
	}
	return desc.Digest.String(), nil
}

// classify maps a registry error to one of the sentinel kinds.
func classify(err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return ErrRegistryDenied
		case te.StatusCode == http.StatusNotFound:
			return ErrImageNotFound
		case te.StatusCode >= 500:
			return ErrRegistryUnreachable
		}
		for _, d := range te.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return ErrImageNotFound
			}
		}
		return ErrRegistryDenied
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		return ErrRegistryUnreachable
	}
	return ErrRegistryUnreachable
}

// setImage writes image into the container c of the pod spec at path.
func setImage(u *unstructured.Unstructured, path []string, c containerRef, image string) error {
	lp := append(append([]string{}, path...), c.List)
	list, found, err := unstructured.NestedSlice(u.Object, lp...)
	if err != nil || !found || c.Index >= len(list) {
		return fmt.Errorf("rewriting image of %s: container list not found", c.label())
	}
	m, ok := list[c.Index].(map[string]any)
	if !ok {
		return fmt.Errorf("rewriting image of %s: not an object", c.label())
	}
	m["image"] = image
	return unstructured.SetNestedSlice(u.Object, list, lp...)
}

// pullSecretKeychain serves credentials from .dockerconfigjson documents.
type pullSecretKeychain struct {
	auths map[string]authn.AuthConfig // by normalised registry host
}

type dockerConfigJSON struct {
	Auths map[string]struct {
		Username      string `json:"username,omitempty"`
		Password      string `json:"password,omitempty"`
		Auth          string `json:"auth,omitempty"`
		IdentityToken string `json:"identitytoken,omitempty"`
		RegistryToken string `json:"registrytoken,omitempty"`
	} `json:"auths"`
}

func newPullSecretKeychain(secrets [][]byte) (*pullSecretKeychain, error) {
	kc := &pullSecretKeychain{auths: map[string]authn.AuthConfig{}}
	for i, s := range secrets {
		var cfg dockerConfigJSON
		if err := json.Unmarshal(s, &cfg); err != nil {
			return nil, fmt.Errorf("image pull secret %d: not a valid .dockerconfigjson document", i)
		}
		for host, a := range cfg.Auths {
			ac := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
			if a.Auth != "" && ac.Username == "" {
				b, err := base64.StdEncoding.DecodeString(a.Auth)
				if err != nil {
					return nil, fmt.Errorf("image pull secret %d: registry %s: auth is not base64", i, host)
				}
				user, pass, _ := strings.Cut(string(b), ":")
				ac.Username, ac.Password = user, pass
			}
			h := normaliseRegistry(host)
			if _, dup := kc.auths[h]; !dup { // the first secret naming a registry wins, as in the kubelet
				kc.auths[h] = ac
			}
		}
	}
	return kc, nil
}

// normaliseRegistry reduces "https://index.docker.io/v1/" and friends to a
// host[:port] comparable with name.Registry.RegistryStr().
func normaliseRegistry(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(s), "https://"), "http://")
	if i := strings.Index(s, "/"); i >= 0 {
		s = s[:i]
	}
	switch s {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return name.DefaultRegistry
	}
	return s
}

// Resolve implements authn.Keychain.
func (k *pullSecretKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if ac, ok := k.auths[normaliseRegistry(r.RegistryStr())]; ok {
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}
