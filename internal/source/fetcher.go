package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/sync/singleflight"
)

// Ref selects what to deploy; exactly one of Branch, Tag, Commit is used, in
// the order Commit, Tag, Branch; empty means branch "main".
type Ref struct {
	Branch string
	Tag    string
	Commit string
}

// String renders the reference for messages.
func (r Ref) String() string {
	switch {
	case r.Commit != "":
		return "commit " + r.Commit
	case r.Tag != "":
		return "tag " + r.Tag
	case r.Branch != "":
		return "branch " + r.Branch
	}
	return "branch main"
}

// Snapshot is one commit of a repository on disk.
type Snapshot struct {
	URL      string
	Revision string // full commit SHA
	Dir      string // root of the files; read-only by convention
}

// Options bounds a Fetcher.
type Options struct {
	// CacheDir holds the snapshots.
	CacheDir string
	// MaxFileBytes refuses larger files; default 10 MiB.
	MaxFileBytes int64
	// MaxTotalBytes refuses larger commits; default 512 MiB.
	MaxTotalBytes int64
	// MaxFiles refuses a commit of more entries (files, directories and
	// symbolic links, counted as checked out); default 100000.
	MaxFiles int
	// MaxObjects refuses a fetch whose pack holds more objects (a pinned
	// commit fetches the whole history); default 500000.
	MaxObjects uint32
	// MaxRefs refuses a repository that advertises more references
	// (branches, tags and others); over HTTP(S) and SSH its listing is read up
	// to MaxRefs × 256 bytes. Default 100000.
	MaxRefs int
	// ListTTL reuses a remote's ref listing for this long, so many
	// Applications polling one repository ask it once; default 2s.
	ListTTL time.Duration
	// Timeout bounds one remote operation; default 2m.
	Timeout time.Duration
	// SnapshotTTL is how long a snapshot nobody asked for is kept: each
	// new commit fetched removes the snapshots, of any repository, unused
	// for longer; default 1h.
	SnapshotTTL time.Duration
	// Now is the clock, for tests; default time.Now.
	Now func() time.Time
	// Observe, when set, is called with the duration of every real fetch.
	Observe func(url string, d time.Duration, err error)
}

// Fetcher fetches snapshots, sharing work between callers.
type Fetcher struct {
	opts  Options
	group singleflight.Group
	mu    sync.Mutex
	lists map[string]listing
	// gens counts Invalidate calls per URL: a listing started before the
	// latest is not kept, nor joined by a caller that came after it.
	gens map[string]uint64
	// used is when each snapshot directory was last handed out.
	used map[string]time.Time
	// Fetches counts real fetches (not cache hits), for tests and metrics.
	fetches int64
}

type listing struct {
	at   time.Time
	refs map[string]string // ref name -> commit
}

// historyObjectBytes bounds one object of a pinned commit's history: go-git
// holds an object whole in memory while it indexes the pack.
const historyObjectBytes = 64 << 20

// ErrRefNotFound is returned when the branch or tag does not exist.
var ErrRefNotFound = errors.New("reference not found")

// ErrInvalidCommit is returned for a commit that is not a full SHA (40
// hexadecimal digits, or 64 for a SHA-256 repository). A commit names a
// directory of the snapshot cache, so nothing else is ever used as one.
var ErrInvalidCommit = errors.New("not a full commit SHA")

// checkCommit returns c in lower case, or ErrInvalidCommit.
func checkCommit(c string) (string, error) {
	lc := strings.ToLower(c)
	if len(lc) != 40 && len(lc) != 64 {
		return "", fmt.Errorf("%w: %q", ErrInvalidCommit, c)
	}
	for _, r := range lc {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return "", fmt.Errorf("%w: %q", ErrInvalidCommit, c)
		}
	}
	return lc, nil
}

// NewFetcher returns a Fetcher storing snapshots under opts.CacheDir.
func NewFetcher(opts Options) *Fetcher {
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = 10 << 20
	}
	if opts.MaxTotalBytes <= 0 {
		opts.MaxTotalBytes = 512 << 20
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = 100_000
	}
	if opts.MaxObjects == 0 {
		opts.MaxObjects = 500_000
	}
	if opts.MaxRefs <= 0 {
		opts.MaxRefs = 100_000
	}
	if opts.ListTTL <= 0 {
		opts.ListTTL = 2 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.SnapshotTTL <= 0 {
		opts.SnapshotTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Fetcher{opts: opts, lists: map[string]listing{}, gens: map[string]uint64{}, used: map[string]time.Time{}}
}

// Fetches returns how many real fetches (clones) the Fetcher made.
func (f *Fetcher) Fetches() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

// Fetch returns the snapshot of ref in the repository at url, fetching it
// only when no snapshot of the resolved commit exists. Its errors never
// carry the credentials of url.
func (f *Fetcher) Fetch(ctx context.Context, url string, ref Ref, auth *Auth) (*Snapshot, error) {
	s, err := f.fetchSnapshot(ctx, url, ref, auth)
	return s, redact(err, url)
}

func (f *Fetcher) fetchSnapshot(ctx context.Context, url string, ref Ref, auth *Auth) (*Snapshot, error) {
	if err := CheckURL(url); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	am, cleanup, err := auth.method(url)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	var commit string
	if ref.Commit != "" {
		if commit, err = checkCommit(ref.Commit); err != nil {
			return nil, err
		}
		// The caller's credentials must open the repository even when the
		// commit is on disk already: a snapshot one Application fetched is
		// not served to another that may not read the repository.
		if _, err := f.list(ctx, url, auth.key(), am); err != nil {
			return nil, err
		}
	} else if commit, err = f.resolve(ctx, url, auth.key(), ref, am); err != nil {
		return nil, err
	}
	dir := f.snapshotDir(url, commit)
	if f.take(dir) {
		return &Snapshot{URL: url, Revision: commit, Dir: dir}, nil
	}
	// Callers who passed their own listing share one fetch. It runs on its
	// own deadline: a caller that gives up (a webhook's shorter one) does
	// not fail the others.
	ch := f.group.DoChan("fetch\x00"+url+"\x00"+commit, func() (any, error) {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return nil, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.opts.Timeout)
		defer cancel()
		start := time.Now()
		err := f.fetch(fctx, url, ref, commit, am, dir)
		if f.opts.Observe != nil {
			f.opts.Observe(url, time.Since(start), err)
		}
		if err == nil {
			f.sweepAll(dir)
		}
		return nil, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("fetching %s (%s) from %s: %w", commit, ref, url, ctx.Err())
	}
	if !f.take(dir) {
		return nil, fmt.Errorf("snapshot of %s from %s was removed as it was fetched; retrying", commit, url)
	}
	return &Snapshot{URL: url, Revision: commit, Dir: dir}, nil
}

// Resolve returns the commit ref points to, without fetching. Its errors
// never carry the credentials of url.
func (f *Fetcher) Resolve(ctx context.Context, url string, ref Ref, auth *Auth) (string, error) {
	if ref.Commit != "" {
		return checkCommit(ref.Commit)
	}
	if err := CheckURL(url); err != nil {
		return "", redact(err, url)
	}
	am, cleanup, err := auth.method(url)
	if err != nil {
		return "", redact(err, url)
	}
	defer cleanup()
	c, err := f.resolve(ctx, url, auth.key(), ref, am)
	return c, redact(err, url)
}

// ErrUnsupportedURL is returned for a repository URL berth does not fetch
// from: only https://, http:// and ssh:// (or scp-like user@host:path)
// are. A local path or file:// would read the agent's own disk, and git://
// has neither credentials nor a bound on what the server sends.
var ErrUnsupportedURL = errors.New("unsupported repository URL")

// CheckURL returns ErrUnsupportedURL unless url is an https, http or ssh
// repository URL.
func CheckURL(url string) error {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupportedURL, err)
	}
	switch ep.Protocol {
	case "https", "http", "ssh":
		if ep.Host == "" {
			return fmt.Errorf("%w: %s names no host", ErrUnsupportedURL, Redact(url))
		}
		return nil
	}
	return fmt.Errorf("%w: %s (%s); use https://, http:// or ssh://", ErrUnsupportedURL, Redact(url), ep.Protocol)
}

func refName(ref Ref) plumbing.ReferenceName {
	if ref.Tag != "" {
		return plumbing.NewTagReferenceName(ref.Tag)
	}
	b := ref.Branch
	if b == "" {
		b = "main"
	}
	return plumbing.NewBranchReferenceName(b)
}

// resolve returns the commit ref points to in the listing of url made
// with the credentials identified by authKey.
func (f *Fetcher) resolve(ctx context.Context, url, authKey string, ref Ref, am transport.AuthMethod) (string, error) {
	l, err := f.list(ctx, url, authKey, am)
	if err != nil {
		return "", err
	}
	name := refName(ref)
	c, ok := l.refs[name.String()]
	if !ok {
		return "", fmt.Errorf("%s in %s: %w", ref, url, ErrRefNotFound)
	}
	return c, nil
}

// list returns the reference listing of url made with the credentials
// identified by authKey, reusing one younger than ListTTL.
func (f *Fetcher) list(ctx context.Context, url, authKey string, am transport.AuthMethod) (listing, error) {
	key := url + "\x00" + authKey
	f.mu.Lock()
	l, ok := f.lists[key]
	gen := f.gens[url]
	f.mu.Unlock()
	if ok && time.Since(l.at) <= f.opts.ListTTL {
		return l, nil
	}
	ch := f.group.DoChan(fmt.Sprintf("list\x00%s\x00%d", key, gen), func() (any, error) {
		lctx, limit := withListingLimit(context.WithoutCancel(ctx), f.opts.MaxRefs)
		lctx, cancel := context.WithTimeout(lctx, f.opts.Timeout)
		defer cancel()
		rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})
		viaSSH, done := sshBound(url, limit)
		defer done()
		// Peeled entries give the commit an annotated tag points to.
		refs, err := rem.ListContext(lctx, &git.ListOptions{Auth: am, PeelingOption: git.AppendPeeled, ProxyOptions: viaSSH})
		if err = limit.refused(err); err != nil {
			return nil, fmt.Errorf("listing references of %s: %w", url, err)
		}
		// The listing's bytes were bounded; its count is checked here.
		if peeled := countPeeled(refs); len(refs)-peeled > f.opts.MaxRefs {
			return nil, fmt.Errorf("%w: %s advertises %d references (branches, tags and others), more than %d", ErrUnsafe, url, len(refs)-peeled, f.opts.MaxRefs)
		}
		m := map[string]string{}
		for _, r := range refs {
			if r.Type() == plumbing.HashReference {
				m[r.Name().String()] = r.Hash().String()
			}
		}
		// Annotated tags: the peeled commit, not the tag object.
		for _, r := range refs {
			if n := r.Name().String(); strings.HasSuffix(n, "^{}") {
				m[strings.TrimSuffix(n, "^{}")] = r.Hash().String()
			}
		}
		nl := listing{at: time.Now(), refs: m}
		f.mu.Lock()
		defer f.mu.Unlock()
		for k, old := range f.lists {
			if time.Since(old.at) > f.opts.ListTTL {
				delete(f.lists, k) // credentials nobody polls with any more
			}
		}
		if f.gens[url] == gen {
			f.lists[key] = nl // else invalidated while it ran: not reused
		}
		return nl, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return listing{}, res.Err
		}
		return res.Val.(listing), nil
	case <-ctx.Done():
		return listing{}, fmt.Errorf("listing references of %s: %w", url, ctx.Err())
	}
}

func (f *Fetcher) snapshotDir(url, commit string) string {
	h := sha256.Sum256([]byte(url))
	return filepath.Join(f.opts.CacheDir, hex.EncodeToString(h[:8]), commit)
}

func (f *Fetcher) fetch(ctx context.Context, url string, ref Ref, commit string, am transport.AuthMethod, dir string) error {
	f.mu.Lock()
	f.fetches++
	f.mu.Unlock()
	// The objects go to disk, in a directory of their own removed once the
	// snapshot is written; the pack is checked before go-git reads it.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("creating snapshot cache: %w", err)
	}
	gitDir, err := os.MkdirTemp(filepath.Dir(dir), ".git-")
	if err != nil {
		return fmt.Errorf("creating fetch directory: %w", err)
	}
	defer os.RemoveAll(gitDir)
	limits := packLimits{pack: f.opts.MaxTotalBytes, object: f.opts.MaxFileBytes, objects: f.opts.MaxObjects, inflated: 2 * f.opts.MaxTotalBytes}
	if ref.Commit != "" {
		// A pinned commit comes with its whole history (go-git cannot ask
		// for one commit alone), where an old large file is no reason to
		// refuse: the snapshot's own files keep MaxFileBytes.
		limits = packLimits{pack: 4 * f.opts.MaxTotalBytes, object: max(f.opts.MaxFileBytes, historyObjectBytes),
			objects: 4 * f.opts.MaxObjects, inflated: 8 * f.opts.MaxTotalBytes}
	}
	st := &boundedStorage{
		Storage: filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRU(4*cache.MiByte),
			filesystem.Options{ExclusiveAccess: true, LargeObjectThreshold: 1 << 20}),
		ctx:      ctx,
		spoolDir: gitDir,
		limits:   limits,
	}
	// A pinned commit may be reachable from a tag only (its branch was
	// deleted after the release was tagged).
	opts := &git.CloneOptions{URL: url, Auth: am, NoCheckout: true, Tags: git.AllTags}
	if ref.Commit == "" {
		opts.Tags = git.NoTags
		opts.ReferenceName = refName(ref)
		opts.SingleBranch = true
		opts.Depth = 1
	}
	cctx, listLimit := withListingLimit(ctx, f.opts.MaxRefs)
	cctx, fetchLimit := withFetchLimit(cctx, limits.pack)
	// Over SSH one connection carries the listing and the response.
	sshLimit := &bodyLimit{bytes: listLimit.bytes + fetchLimit.bytes, what: "listing and fetch response"}
	var done func()
	opts.ProxyOptions, done = sshBound(url, sshLimit)
	defer done()
	repo, err := git.CloneContext(cctx, st, nil, opts)
	if err = sshLimit.refused(fetchLimit.refused(listLimit.refused(err))); err != nil {
		return fmt.Errorf("fetching %s (%s) from %s: %w", commit, ref, url, err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if err != nil && ref.Commit == "" {
		// The branch moved between listing and fetching: take what we got.
		head, herr := repo.Head()
		if herr != nil {
			return fmt.Errorf("reading fetched head of %s: %w", url, herr)
		}
		c, err = repo.CommitObject(head.Hash())
		if err == nil && c.Hash.String() != commit {
			return fmt.Errorf("%s moved from %s to %s while fetching; retrying", ref, commit, c.Hash)
		}
	}
	if err != nil {
		return fmt.Errorf("commit %s not found in %s: %w", commit, url, err)
	}
	return writeSnapshot(ctx, c, dir, snapshotLimits{file: f.opts.MaxFileBytes, total: f.opts.MaxTotalBytes, entries: f.opts.MaxFiles})
}

// Invalidate forgets the cached reference listing of url, so the next Fetch
// asks the remote (used by webhooks).
func (f *Fetcher) Invalidate(url string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gens[url]++
	for k := range f.lists {
		if strings.HasPrefix(k, url+"\x00") {
			delete(f.lists, k)
		}
	}
}

// Cached returns the snapshot of commit if it is on disk, without asking
// the remote.
func (f *Fetcher) Cached(url, commit string) (*Snapshot, bool) {
	commit, err := checkCommit(commit)
	if err != nil {
		return nil, false
	}
	dir := f.snapshotDir(url, commit)
	if f.take(dir) {
		return &Snapshot{URL: url, Revision: commit, Dir: dir}, true
	}
	return nil, false
}

// take reports whether the snapshot dir exists and marks it used. It holds
// f.mu, as sweep does, so a snapshot handed out is not removed under its
// caller.
func (f *Fetcher) take(dir string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return false
	}
	now := f.opts.Now()
	f.used[dir] = now
	// For other processes sharing the cache (two `berth diff` runs), which
	// judge a snapshot by its directory's time.
	_ = os.Chtimes(dir, now, now)
	return true
}

// sweepAll sweeps every repository's snapshots, keeping keep: a URL no
// Application fetches any more (deleted, or spelled another way) has its
// snapshots removed too.
func (f *Fetcher) sweepAll(keep string) {
	entries, err := os.ReadDir(f.opts.CacheDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			f.sweep(filepath.Join(f.opts.CacheDir, e.Name()), keep)
		}
	}
}

// sweep removes from repoDir (one repository's snapshots) those unused
// for SnapshotTTL, but keep (the one just fetched), and what a crash left: half-written snapshots and
// fetch directories older than two fetch timeouts. A snapshot not handed
// out since the process started counts from its directory's time.
func (f *Fetcher) sweep(repoDir, keep string) {
	entries, err := os.ReadDir(repoDir)
	if err != nil {
		return
	}
	now := f.opts.Now()
	var trash []string
	f.mu.Lock()
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(repoDir, e.Name())
		if p == keep {
			continue
		}
		last, ok := f.used[p]
		if !ok {
			fi, err := e.Info()
			if err != nil {
				continue
			}
			last = fi.ModTime()
		}
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".old-"):
		case strings.HasPrefix(name, ".tmp-"), strings.HasPrefix(name, ".git-"):
			if now.Sub(last) < 2*f.opts.Timeout {
				continue
			}
		default:
			if _, err := checkCommit(name); err != nil || now.Sub(last) < f.opts.SnapshotTTL {
				continue
			}
			// Renamed while f.mu is held, so take sees it gone.
			old := filepath.Join(repoDir, ".old-"+name)
			if err := os.Rename(p, old); err != nil {
				continue
			}
			delete(f.used, p)
			p = old
		}
		trash = append(trash, p)
	}
	f.mu.Unlock()
	for _, p := range trash {
		_ = os.RemoveAll(p)
	}
}
