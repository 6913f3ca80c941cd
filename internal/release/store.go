package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	berthv1 "github.com/berth-dev/berth/api/v1alpha1"
	"github.com/berth-dev/berth/internal/manifest"
)

// chunkBytes is the size of one manifest Secret's payload: compressed data
// is split so every Secret stays far below the 1 MiB object limit.
const chunkBytes = 512 << 10

// maxManifestBytes bounds decompression of a stored release (bomb guard).
const maxManifestBytes = 256 << 20

// DefaultHistoryLimit is the number of releases kept per Application.
const DefaultHistoryLimit = 10

// HistoryLimit is the number of releases kept for app
// (spec.rollback.historyLimit, or DefaultHistoryLimit).
func HistoryLimit(app *berthv1.Application) int {
	if l := app.Spec.Rollback.HistoryLimit; l > 0 {
		return l
	}
	return DefaultHistoryLimit
}

// SecretType marks the Secrets that hold release manifests.
const SecretType corev1.SecretType = "berth.dev/release-manifests" //nolint:gosec // a type name, not a credential

// ErrDigestMismatch is returned when stored manifests no longer match the
// digest recorded when they were applied.
var ErrDigestMismatch = errors.New("release manifests do not match their recorded digest")

// Store reads and writes Releases.
type Store struct {
	Client client.Client
	// Reader, when set, serves List and Get uncached (the reconciler must
	// see the release it created a moment ago).
	Reader client.Reader
	// Trimmed, when set, is called with each release the history trim
	// removed. The hook Jobs it names are the caller's to delete: they run
	// as the Application's service account, not as the store's client.
	Trimmed func(berthv1.Release)
}

func (s *Store) reader() client.Reader {
	if s.Reader != nil {
		return s.Reader
	}
	return s.Client
}

// Input is what a new release records.
type Input struct {
	Commit      string
	Trigger     string
	Renderer    string
	Objects     []manifest.Object
	Images      []berthv1.ImagePin
	HelmRelease string
	HelmVersion int
	RollbackOf  int64
	// RolledBackFrom, Request and Snapshot: see berthv1.ReleaseSpec.
	RolledBackFrom string
	Request        string
	Snapshot       *berthv1.DataSnapshot
	// Encoded and Digest, when Digest is set, are what Encode(Objects)
	// returned to the caller: a sync that computed the digest to decide
	// whether to write passes them on instead of encoding twice.
	Encoded []byte
	Digest  string
}

// encode returns Encode(in.Objects), or what the caller already encoded.
func (in Input) encode() ([]byte, string, error) {
	if in.Digest != "" && in.Encoded != nil {
		return in.Encoded, in.Digest, nil
	}
	return Encode(in.Objects)
}

// Name returns the Release name of release n of app.
func Name(app string, n int64) string { return fmt.Sprintf("%s-r%d", app, n) }

// Encode renders objects as one YAML stream, in order, and returns it with
// its sha256 digest.
func Encode(objs []manifest.Object) ([]byte, string, error) {
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object.Object)
		if err != nil {
			return nil, "", fmt.Errorf("encoding %s: %w", o.ID(), err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	sum := sha256.Sum256(b.Bytes())
	return b.Bytes(), "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Create records a new release of app, numbered after the newest existing
// one, and trims the history to the Application's limit.
func (s *Store) Create(ctx context.Context, app *berthv1.Application, in Input) (*berthv1.Release, error) {
	existing, err := s.List(ctx, app.Namespace, app.Name)
	if err != nil {
		return nil, err
	}
	n := int64(1)
	if len(existing) > 0 {
		n = existing[0].Spec.Number + 1
	}
	data, digest, err := in.encode()
	if err != nil {
		return nil, err
	}
	return s.create(ctx, app, in, data, digest, n, existing)
}

// Record is Create, except that a sync that re-applies what the current
// release already holds (same commit, same manifests: a retry, a manual
// sync with nothing new) is not a new release: the current one is returned
// with created false.
//
// It numbers the release after app.Status.CurrentRelease and reads no
// listing unless that is behind the records (a status write lost in a
// crash) or the history needs trimming: listing every release of a
// namespace on each sync would make syncing N Applications cost O(N²).
func (s *Store) Record(ctx context.Context, app *berthv1.Application, in Input) (rel *berthv1.Release, created bool, err error) {
	data, digest, err := in.encode()
	if err != nil {
		return nil, false, err
	}
	if cur := app.Status.CurrentRelease; cur > 0 {
		if rel, err := s.Get(ctx, app.Namespace, app.Name, cur); err == nil && rel.Spec.Commit == in.Commit && rel.Spec.Digest == digest {
			if _, err := s.Get(ctx, app.Namespace, app.Name, cur+1); apierrors.IsNotFound(err) {
				return rel, false, nil
			}
		}
	}
	rel, err = s.create(ctx, app, in, data, digest, app.Status.CurrentRelease+1, nil)
	if apierrors.IsAlreadyExists(err) {
		// The status is behind the records: number from the listing.
		existing, lerr := s.List(ctx, app.Namespace, app.Name)
		if lerr != nil {
			return nil, false, lerr
		}
		if len(existing) == 0 {
			return nil, false, err
		}
		if existing[0].Spec.Commit == in.Commit && existing[0].Spec.Digest == digest {
			return &existing[0], false, nil
		}
		rel, err = s.create(ctx, app, in, data, digest, existing[0].Spec.Number+1, existing)
	}
	// A release returned with an error was created; only its trim failed.
	return rel, rel != nil, err
}

// gzipWriters are reused: a gzip writer at the best compression allocates
// about a megabyte of state, more than a small release's manifests.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestCompression)
	return zw
}}

// create records release n of app, whose manifests Encode rendered as data
// with digest. existing, newest first, is the history
// to trim; nil means unknown (it is listed only if n exceeds the limit).
func (s *Store) create(ctx context.Context, app *berthv1.Application, in Input, data []byte, digest string, n int64, existing []berthv1.Release) (*berthv1.Release, error) {
	var gz bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&gz)
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("compressing manifests: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing manifests: %w", err)
	}
	name := Name(app.Name, n)
	var chunks [][]byte
	for c := gz.Bytes(); len(c) > 0; {
		k := min(len(c), chunkBytes)
		chunks = append(chunks, c[:k])
		c = c[k:]
	}
	rel := &berthv1.Release{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: app.Namespace,
			Labels: map[string]string{berthv1.ReleaseApplicationLabel: app.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: berthv1.GroupVersion.String(), Kind: "Application", Name: app.Name, UID: app.UID,
			}},
		},
		Spec: berthv1.ReleaseSpec{
			Application: app.Name, Number: n, Commit: in.Commit, Digest: digest, Trigger: in.Trigger,
			Renderer: in.Renderer, Images: in.Images, ObjectCount: len(in.Objects),
			HelmRelease: in.HelmRelease, HelmVersion: in.HelmVersion, RollbackOf: in.RollbackOf,
			RolledBackFrom: in.RolledBackFrom, Request: in.Request, Snapshot: in.Snapshot,
		},
	}
	for i := range chunks {
		rel.Spec.Manifests = append(rel.Spec.Manifests, berthv1.ManifestChunk{SecretName: fmt.Sprintf("%s-m%d", name, i)})
	}
	if err := s.Client.Create(ctx, rel); err != nil {
		return nil, fmt.Errorf("creating release %s: %w", name, err)
	}
	owner := metav1.OwnerReference{APIVersion: berthv1.GroupVersion.String(), Kind: "Release", Name: rel.Name, UID: rel.UID}
	for i, c := range chunks {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: rel.Spec.Manifests[i].SecretName, Namespace: app.Namespace,
				Labels:          map[string]string{berthv1.ReleaseApplicationLabel: app.Name},
				OwnerReferences: []metav1.OwnerReference{owner},
			},
			Type: SecretType,
			Data: map[string][]byte{"manifests.gz": c},
		}
		if err := s.Client.Create(ctx, sec); err != nil {
			_ = s.Client.Delete(ctx, rel)
			return nil, fmt.Errorf("storing manifests of %s: %w", name, err)
		}
	}
	// The API server defaults the status to Pending (see berthv1.Release):
	// no status write until the verdict.
	limit := HistoryLimit(app)
	if n <= int64(limit) {
		return rel, nil
	}
	if existing == nil {
		all, err := s.List(ctx, app.Namespace, app.Name)
		if err != nil {
			return rel, fmt.Errorf("trimming release history: %w", err)
		}
		for _, r := range all {
			if r.Name != rel.Name {
				existing = append(existing, r)
			}
		}
	}
	// Oldest first: a trim that stops half-way never leaves an old release
	// without the newer ones a restore across it needs.
	trim := append([]berthv1.Release{*rel}, existing...)[min(limit, len(existing)+1):]
	slices.Reverse(trim)
	for _, old := range trim {
		if err := s.Client.Delete(ctx, &old); err != nil && !apierrors.IsNotFound(err) {
			return rel, fmt.Errorf("trimming release history: %w", err)
		}
		if s.Trimmed != nil {
			s.Trimmed(old)
		}
	}
	return rel, nil
}

// List returns app's releases, newest first.
func (s *Store) List(ctx context.Context, namespace, app string) ([]berthv1.Release, error) {
	var l berthv1.ReleaseList
	if err := s.reader().List(ctx, &l, client.InNamespace(namespace), client.MatchingLabels{berthv1.ReleaseApplicationLabel: app}); err != nil {
		return nil, fmt.Errorf("listing releases of %s: %w", app, err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Spec.Number > l.Items[j].Spec.Number })
	return l.Items, nil
}

// Get returns release n of app.
func (s *Store) Get(ctx context.Context, namespace, app string, n int64) (*berthv1.Release, error) {
	rel := &berthv1.Release{}
	if err := s.reader().Get(ctx, types.NamespacedName{Namespace: namespace, Name: Name(app, n)}, rel); err != nil {
		return nil, fmt.Errorf("reading release %d of %s: %w", n, app, err)
	}
	return rel, nil
}

// Manifests reads a release's objects back, refusing them when they no
// longer match the recorded digest.
func (s *Store) Manifests(ctx context.Context, rel *berthv1.Release) ([]manifest.Object, error) {
	var gz bytes.Buffer
	for _, c := range rel.Spec.Manifests {
		sec := &corev1.Secret{}
		if err := s.reader().Get(ctx, types.NamespacedName{Namespace: rel.Namespace, Name: c.SecretName}, sec); err != nil {
			return nil, fmt.Errorf("reading manifests of %s: %w", rel.Name, err)
		}
		gz.Write(sec.Data["manifests.gz"])
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", rel.Name, ErrDigestMismatch, err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxManifestBytes+1))
	if err != nil || len(data) > maxManifestBytes {
		return nil, fmt.Errorf("%s: %w: unreadable or oversized", rel.Name, ErrDigestMismatch)
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != rel.Spec.Digest {
		return nil, fmt.Errorf("%s: %w (recorded %s, found %s)", rel.Name, ErrDigestMismatch, rel.Spec.Digest, got)
	}
	return manifest.Parse("release:"+rel.Name, data)
}

// SetOutcome records a release's health and reason.
func (s *Store) SetOutcome(ctx context.Context, rel *berthv1.Release, health, reason string) error {
	return s.UpdateStatus(ctx, rel, func(st *berthv1.ReleaseStatus) {
		st.Health, st.Reason = health, reason
		if health != berthv1.ReleasePending {
			now := metav1.Now()
			st.FinishedAt = &now
		}
	})
}

// Numbered returns the release numbered n in rels, or nil.
func Numbered(rels []berthv1.Release, n int64) *berthv1.Release {
	for i := range rels {
		if rels[i].Spec.Number == n {
			return &rels[i]
		}
	}
	return nil
}

// LastHealthy returns the newest release before n that ended Healthy (or
// was Superseded after being Healthy), or nil.
func LastHealthy(rels []berthv1.Release, before int64) *berthv1.Release {
	for i := range rels {
		r := &rels[i]
		if r.Spec.Number < before && (r.Status.Health == berthv1.ReleaseHealthy || r.Status.Health == berthv1.ReleaseSuperseded) {
			return r
		}
	}
	return nil
}

// ShortCommit abbreviates a commit for tables.
func ShortCommit(c string) string {
	if len(c) > 8 {
		return c[:8]
	}
	return c
}

// ImagesSummary renders a release's images for a table.
func ImagesSummary(pins []berthv1.ImagePin) string {
	var parts []string
	for _, p := range pins {
		d := p.Digest
		if i := strings.Index(d, ":"); i >= 0 && len(d) > i+13 {
			d = d[:i+13]
		}
		parts = append(parts, p.Tag+"@"+d)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}
