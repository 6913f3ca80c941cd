package source_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/source"
	"github.com/berth-dev/berth/internal/testenv"
)

func TestFetchSharesWorkPerCommit(t *testing.T) {
	g := testenv.NewGitServer(t, testenv.WithBasicAuth("reader", "pw"))
	g.CreateRepo(t, "mono")
	wt := g.Clone(t, "mono")
	sha1 := wt.Write("apps/a/cm.yaml", "a: 1\n").CommitAndPush("one")
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
	auth := &source.Auth{Username: "reader", Password: "pw"}

	// 50 Applications on one repository and commit: one clone.
	var wg sync.WaitGroup
	snaps := make([]*source.Snapshot, 50)
	errs := make([]error, 50)
	for i := range snaps {
		wg.Go(func() {
			snaps[i], errs[i] = f.Fetch(context.Background(), g.RepoURL("mono"), source.Ref{Branch: "main"}, auth)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if snaps[i].Revision != sha1 || snaps[i].Dir != snaps[0].Dir {
			t.Fatalf("fetch %d = %+v, want %s in one snapshot", i, snaps[i], sha1)
		}
	}
	if n := f.Fetches(); n != 1 {
		t.Errorf("clones = %d, want 1", n)
	}
	b, err := os.ReadFile(filepath.Join(snaps[0].Dir, "apps/a/cm.yaml"))
	if err != nil || string(b) != "a: 1\n" {
		t.Errorf("snapshot content = %q, %v", b, err)
	}

	sha2 := wt.Write("apps/a/cm.yaml", "a: 2\n").CommitAndPush("two")
	f.Invalidate(g.RepoURL("mono"))
	s2, err := f.Fetch(context.Background(), g.RepoURL("mono"), source.Ref{}, auth)
	if err != nil || s2.Revision != sha2 || s2.Dir == snaps[0].Dir {
		t.Fatalf("after a new commit: %+v, %v", s2, err)
	}
	// Pinning the old commit reuses its snapshot without fetching.
	s1, err := f.Fetch(context.Background(), g.RepoURL("mono"), source.Ref{Commit: sha1}, auth)
	if err != nil || s1.Dir != snaps[0].Dir || f.Fetches() != 2 {
		t.Errorf("pinned old commit: %+v, %v, clones %d", s1, err, f.Fetches())
	}
}

func TestFetchErrors(t *testing.T) {
	g := testenv.NewGitServer(t, testenv.WithBasicAuth("reader", "pw"))
	g.CreateRepo(t, "r")
	g.Clone(t, "r").Write("a.yaml", "x\n").CommitAndPush("one")
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
	ctx := context.Background()
	if _, err := f.Fetch(ctx, g.RepoURL("r"), source.Ref{}, &source.Auth{Username: "reader", Password: "bad"}); err == nil {
		t.Error("fetch with a wrong password succeeded")
	} else if strings.Contains(err.Error(), "bad") {
		t.Errorf("error reveals the password: %v", err)
	}
	if _, err := f.Fetch(ctx, g.RepoURL("r"), source.Ref{Branch: "nope"}, &source.Auth{Username: "reader", Password: "pw"}); !errors.Is(err, source.ErrRefNotFound) {
		t.Errorf("missing branch: %v, want ErrRefNotFound", err)
	}
	// Credentials written into the URL stay out of the error (which ends
	// up in the Application's status and events).
	withCreds := strings.Replace(g.RepoURL("r"), "://", "://reader:url-held-s3cret@", 1)
	_, err := f.Fetch(ctx, withCreds, source.Ref{Branch: "nope"}, nil)
	if err == nil || strings.Contains(err.Error(), "url-held-s3cret") {
		t.Errorf("fetch through a URL with credentials: %v, want an error without them", err)
	}
	tokenUser := strings.Replace(g.RepoURL("r"), "://", "://ghp_0123456789abcdefTOKEN@", 1)
	if _, err := f.Resolve(ctx, tokenUser, source.Ref{Branch: "nope"}, nil); err == nil || strings.Contains(err.Error(), "ghp_0123456789abcdefTOKEN") {
		t.Errorf("resolve through a URL with a token as user: %v, want an error without it", err)
	}
	if got := source.Redact(withCreds); strings.Contains(got, "s3cret") || strings.Contains(got, "reader") || !strings.HasPrefix(got, "http://127.0.0.1:") {
		t.Errorf("Redact = %q", got)
	}
	// A password with a bare % (or #, or /) makes the URL unparseable;
	// its credentials are cut all the same.
	unparseable := strings.Replace(g.RepoURL("r"), "://", "://deploy:100%sure/s3cret@", 1)
	if _, err := f.Fetch(ctx, unparseable, source.Ref{}, nil); err == nil || strings.Contains(err.Error(), "sure/s3cret") {
		t.Errorf("fetch through an unparseable URL with credentials: %v, want an error without them", err)
	}
	if got := source.Redact(unparseable); strings.Contains(got, "s3cret") || !strings.HasPrefix(got, "http://***@127.0.0.1:") {
		t.Errorf("Redact(unparseable) = %q", got)
	}
	// One starting with / parses, the password read as the path.
	misread := strings.Replace(g.RepoURL("r"), "://", "://deploy:/s3cret@", 1)
	if _, err := f.Fetch(ctx, misread, source.Ref{}, nil); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("fetch through a URL whose password parses as its path: %v, want an error without it", err)
	}
	if got := source.Redact(misread); strings.Contains(got, "s3cret") {
		t.Errorf("Redact(misread) = %q", got)
	}
}

func TestFetchRefusesUnsafeContent(t *testing.T) {
	g := testenv.NewGitServer(t)
	tests := []struct {
		name string
		mk   func(wt *testenv.WorkTree) error
		want string
		// maxFile is MaxFileBytes; 1024 when zero.
		maxFile int64
	}{
		{"symlink outside", func(wt *testenv.WorkTree) error {
			return os.Symlink("../../etc/passwd", filepath.Join(wt.Dir, "apps", "link.yaml"))
		}, "points outside", 0},
		{"absolute symlink", func(wt *testenv.WorkTree) error {
			return os.Symlink("/etc/passwd", filepath.Join(wt.Dir, "apps", "abs.yaml"))
		}, "points outside", 0},
		// Each link checks as inside when read as text, but the OS follows
		// a link before applying "..": a -> .. is apps, b -> a/.. the
		// repository root, c -> b/.. its parent, and so on up to /.
		{"chained symlinks", func(wt *testenv.WorkTree) error {
			d := filepath.Join(wt.Dir, "apps", "d")
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			prev := "a"
			if err := os.Symlink("..", filepath.Join(d, prev)); err != nil {
				return err
			}
			for i := range 24 {
				name := fmt.Sprintf("x%02d", i)
				if err := os.Symlink(prev+"/..", filepath.Join(d, name)); err != nil {
					return err
				}
				prev = name
			}
			return os.Symlink(prev+"/etc/passwd", filepath.Join(d, "token.yaml"))
		}, "through other links", 0},
		// A link's target is its blob: one large blob named by many
		// links was read whole for each of them.
		{"symlink with a huge target", func(wt *testenv.WorkTree) error {
			blob := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(blob, []byte(strings.Repeat("a", 2<<20)), 0o644); err != nil {
				return err
			}
			sha := strings.TrimSpace(testenv.Git(t, wt.Dir, "hash-object", "-w", blob))
			for i := range 50 {
				name := fmt.Sprintf("apps/l%02d.yaml", i)
				testenv.Git(t, wt.Dir, "update-index", "--add", "--cacheinfo", "120000,"+sha+","+name)
				// No file in the work tree: commit's `add -A` keeps it.
				testenv.Git(t, wt.Dir, "update-index", "--skip-worktree", name)
			}
			return nil
		}, "target of 2097152 bytes", 10 << 20},
		{"oversized file", func(wt *testenv.WorkTree) error {
			return os.WriteFile(filepath.Join(wt.Dir, "apps", "big.yaml"), []byte(strings.Repeat("x", 4096)), 0o644)
		}, "limit", 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "unsafe" + string(rune('a'+i))
			g.CreateRepo(t, name)
			wt := g.Clone(t, name)
			wt.Write("apps/ok.yaml", "ok\n")
			if err := tt.mk(wt); err != nil {
				t.Fatal(err)
			}
			wt.CommitAndPush("unsafe")
			cache := t.TempDir()
			if tt.maxFile == 0 {
				tt.maxFile = 1024
			}
			f := source.NewFetcher(source.Options{CacheDir: cache, MaxFileBytes: tt.maxFile})
			_, err := f.Fetch(context.Background(), g.RepoURL(name), source.Ref{}, nil)
			if !errors.Is(err, source.ErrUnsafe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrUnsafe mentioning %q", err, tt.want)
			}
			// Nothing half-written is left as a snapshot.
			var dirs []string
			_ = filepath.WalkDir(cache, func(p string, d os.DirEntry, _ error) error {
				if d != nil && d.IsDir() && len(filepath.Base(p)) == 40 {
					dirs = append(dirs, p)
				}
				return nil
			})
			if len(dirs) != 0 {
				t.Errorf("a refused commit left snapshots: %v", dirs)
			}
		})
	}
	t.Run("symlink inside is kept", func(t *testing.T) {
		g.CreateRepo(t, "inside")
		wt := g.Clone(t, "inside")
		wt.Write("apps/real.yaml", "ok\n")
		if err := os.Symlink("real.yaml", filepath.Join(wt.Dir, "apps", "alias.yaml")); err != nil {
			t.Fatal(err)
		}
		wt.CommitAndPush("inside")
		f := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
		s, err := f.Fetch(context.Background(), g.RepoURL("inside"), source.Ref{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(s.Dir, "apps", "alias.yaml"))
		if err != nil || string(b) != "ok\n" {
			t.Errorf("alias = %q, %v", b, err)
		}
	})
}

func TestFetchOverSSH(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "private")
	sha := g.Clone(t, "private").Write("app/cm.yaml", "x: 1\n").CommitAndPush("one")
	s := g.ServeSSH(t)
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
	auth := source.AuthFromSecretData(map[string][]byte{"identity": s.Identity, "known_hosts": s.KnownHosts})
	snap, err := f.Fetch(context.Background(), s.RepoURL("private"), source.Ref{}, auth)
	if err != nil {
		t.Fatalf("fetch over ssh: %v", err)
	}
	if snap.Revision != sha {
		t.Errorf("revision = %s, want %s", snap.Revision, sha)
	}
	if _, err := os.Stat(filepath.Join(snap.Dir, "app", "cm.yaml")); err != nil {
		t.Error(err)
	}
	// A host key that does not match known_hosts is refused.
	other := g.ServeSSH(t)
	bad := source.AuthFromSecretData(map[string][]byte{"identity": s.Identity, "known_hosts": []byte(strings.Replace(string(other.KnownHosts), other.Addr, s.Addr, 1))})
	f2 := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
	if _, err := f2.Fetch(context.Background(), s.RepoURL("private"), source.Ref{}, bad); err == nil {
		t.Error("fetch with a wrong known_hosts entry succeeded")
	}
	// No identity: a clear error.
	if _, err := f2.Fetch(context.Background(), s.RepoURL("private"), source.Ref{}, &source.Auth{}); err == nil || !strings.Contains(err.Error(), "identity") {
		t.Errorf("fetch without a key: %v", err)
	}
}

func TestSubmoduleAtNamesTheSubmoduleOfAPath(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "withsub")
	wt := g.Clone(t, "withsub")
	wt.Write("apps/ok.yaml", "ok\n")
	wt.Write(".gitmodules", "[submodule \"shared\"]\n\tpath = vendor/shared\n\turl = https://bot:s3cret@git.example.test/org/shared.git\n")
	// A gitlink: the tree entry a submodule is, pointing at a commit of
	// another repository.
	testenv.Git(t, wt.Dir, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("ab", 20)+",vendor/shared")
	wt.CommitAndPush("submodule")
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
	s, err := f.Fetch(context.Background(), g.RepoURL("withsub"), source.Ref{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "vendor", "shared")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the submodule has content in the snapshot: %v", err)
	}
	want := source.Submodule{Path: "vendor/shared", URL: "https://git.example.test/org/shared.git"}
	for _, p := range []string{"vendor/shared", "vendor/shared/app", "/vendor/shared/app/", "vendor/./shared/app"} {
		if got, ok := s.SubmoduleAt(p); !ok || got != want {
			t.Errorf("SubmoduleAt(%q) = %+v, %v; want %+v", p, got, ok, want)
		}
	}
	for _, p := range []string{"vendor/sharedx", "vendor", "apps", "", "missing/app"} {
		if got, ok := s.SubmoduleAt(p); ok {
			t.Errorf("SubmoduleAt(%q) = %+v, want none", p, got)
		}
	}
}

// A commit names a directory of the snapshot cache: anything but a full
// SHA is refused before it is used, and before the remote is asked.
func TestFetchRefusesCommitsThatAreNotFullSHAs(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "victim")
	vsha := g.Clone(t, "victim").Write("a.yaml", "victim\n").CommitAndPush("one")
	g.CreateRepo(t, "mine")
	msha := g.Clone(t, "mine").Write("a.yaml", "mine\n").CommitAndPush("one")
	cache := t.TempDir()
	f := source.NewFetcher(source.Options{CacheDir: cache})
	ctx := context.Background()
	victim, err := f.Fetch(ctx, g.RepoURL("victim"), source.Ref{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(cache, victim.Dir) // <hash of url>/<sha>
	if err != nil {
		t.Fatal(err)
	}
	fetches := f.Fetches()
	for _, c := range []string{
		msha + "/../../" + rel, // another repository's snapshot
		"x/../../" + filepath.Dir(rel) + "/" + vsha,
		msha[:12], // short SHAs are not resolved
		strings.Repeat("g", 40),
	} {
		s, err := f.Fetch(ctx, g.RepoURL("mine"), source.Ref{Commit: c}, nil)
		if !errors.Is(err, source.ErrInvalidCommit) {
			t.Errorf("Fetch(commit %q) = %+v, %v; want ErrInvalidCommit", c, s, err)
		}
		if _, err := f.Resolve(ctx, g.RepoURL("mine"), source.Ref{Commit: c}, nil); !errors.Is(err, source.ErrInvalidCommit) {
			t.Errorf("Resolve(commit %q) = %v; want ErrInvalidCommit", c, err)
		}
		if s, ok := f.Cached(g.RepoURL("mine"), c); ok {
			t.Errorf("Cached(commit %q) = %+v", c, s)
		}
	}
	if f.Fetches() != fetches {
		t.Errorf("refused commits cost %d fetches", f.Fetches()-fetches)
	}
	b, err := os.ReadFile(filepath.Join(victim.Dir, "a.yaml"))
	if err != nil || string(b) != "victim\n" {
		t.Errorf("the victim's snapshot = %q, %v", b, err)
	}
	// An upper-case SHA is the same commit.
	s, err := f.Fetch(ctx, g.RepoURL("mine"), source.Ref{Commit: strings.ToUpper(msha)}, nil)
	if err != nil || s.Revision != msha {
		t.Errorf("upper-case SHA: %+v, %v", s, err)
	}
}

// A snapshot on disk is served only to callers whose credentials open the
// repository: an Application naming a private repository and a commit it
// learnt of gets nothing without them.
func TestPinnedCommitNeedsCredentialsEvenWhenCached(t *testing.T) {
	g := testenv.NewGitServer(t, testenv.WithBasicAuth("reader", "pw"))
	g.CreateRepo(t, "private")
	sha := g.Clone(t, "private").Write("a.yaml", "secret sauce\n").CommitAndPush("one")
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
	ctx := context.Background()
	if _, err := f.Fetch(ctx, g.RepoURL("private"), source.Ref{Commit: sha}, &source.Auth{Username: "reader", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	for name, auth := range map[string]*source.Auth{"none": nil, "wrong": {Username: "reader", Password: "guess"}} {
		if s, err := f.Fetch(ctx, g.RepoURL("private"), source.Ref{Commit: sha}, auth); err == nil {
			t.Errorf("credentials %s: got the cached snapshot %s", name, s.Dir)
		}
	}
}

// An annotated tag deploys the commit it points to.
func TestFetchAnnotatedTag(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "tagged")
	wt := g.Clone(t, "tagged")
	sha := wt.Write("a.yaml", "v1\n").CommitAndPush("one")
	testenv.Git(t, wt.Dir, "tag", "-a", "v1.0.0", "-m", "release 1.0.0")
	testenv.Git(t, wt.Dir, "tag", "v1.0.0-light")
	wt.Write("a.yaml", "v2\n").CommitAndPush("two")
	testenv.Git(t, wt.Dir, "push", "--quiet", "origin", "v1.0.0", "v1.0.0-light")
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
	for _, tag := range []string{"v1.0.0", "v1.0.0-light"} {
		s, err := f.Fetch(context.Background(), g.RepoURL("tagged"), source.Ref{Tag: tag}, nil)
		if err != nil {
			t.Fatalf("tag %s: %v", tag, err)
		}
		if s.Revision != sha {
			t.Errorf("tag %s resolved to %s, want the commit %s", tag, s.Revision, sha)
		}
		if b, err := os.ReadFile(filepath.Join(s.Dir, "a.yaml")); err != nil || string(b) != "v1\n" {
			t.Errorf("tag %s: a.yaml = %q, %v", tag, b, err)
		}
	}
	// A pinned commit that only a tag reaches (its branch was deleted
	// once the hotfix was tagged).
	wt.Write("a.yaml", "hotfix\n")
	testenv.Git(t, wt.Dir, "commit", "--quiet", "-am", "hotfix")
	hot := strings.TrimSpace(testenv.Git(t, wt.Dir, "rev-parse", "HEAD"))
	testenv.Git(t, wt.Dir, "tag", "-a", "v2.0.1", "-m", "hotfix")
	testenv.Git(t, wt.Dir, "push", "--quiet", "origin", "v2.0.1")
	s, err := f.Fetch(context.Background(), g.RepoURL("tagged"), source.Ref{Commit: hot}, nil)
	if err != nil {
		t.Fatalf("commit reachable from a tag only: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir, "a.yaml")); err != nil || string(b) != "hotfix\n" {
		t.Errorf("hotfix commit: a.yaml = %q, %v", b, err)
	}
}

// A blob of 256 MiB of zeros is about 256 KiB in a pack. go-git inflates
// every object it indexes, so before the pack was checked the fetch alone
// allocated the whole blob, whatever MaxFileBytes said.
func TestFetchRefusesAnInflatingBlobBeforeReadingIt(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "bomb")
	wt := g.Clone(t, "bomb")
	wt.Write("apps/ok.yaml", "ok\n")
	const size = 256 << 20
	f0, err := os.Create(filepath.Join(wt.Dir, "apps", "zeros.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f0.Truncate(size); err != nil {
		t.Fatal(err)
	}
	_ = f0.Close()
	wt.CommitAndPush("bomb")

	f := source.NewFetcher(source.Options{CacheDir: t.TempDir(), MaxFileBytes: 1 << 20})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = f.Fetch(context.Background(), g.RepoURL("bomb"), source.Ref{}, nil)
	runtime.ReadMemStats(&after)
	// Everything this process allocated during the fetch, the Git
	// server's handler included: the pack, not the blob.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("the fetch allocated %.1f MiB", float64(alloc)/(1<<20))
	if alloc > 64<<20 {
		t.Errorf("the fetch allocated %d MiB for a refused %d MiB blob", alloc>>20, size>>20)
	}
	if !errors.Is(err, source.ErrUnsafe) || !strings.Contains(err.Error(), fmt.Sprintf("blob object of %d bytes", size)) {
		t.Errorf("err = %v, want ErrUnsafe naming a blob of %d bytes", err, size)
	}
}

func TestSnapshotsUnusedForTheirTTLAreRemoved(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "evict")
	wt := g.Clone(t, "evict")
	c1 := wt.Write("a.yaml", "v: 1\n").CommitAndPush("one")
	c2 := wt.Write("a.yaml", "v: 2\n").CommitAndPush("two")
	var mu sync.Mutex
	// From now: a snapshot not handed out by this Fetcher counts from its
	// directory's time, which is now too.
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	cacheDir := t.TempDir()
	f := source.NewFetcher(source.Options{CacheDir: cacheDir, SnapshotTTL: time.Hour, Now: clock})
	ctx := context.Background()
	url := g.RepoURL("evict")

	s1, err := f.Fetch(ctx, url, source.Ref{Commit: c1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := f.Fetch(ctx, url, source.Ref{}, nil)
	if err != nil || s2.Revision != c2 {
		t.Fatalf("fetch main = %+v, %v", s2, err)
	}
	// A crash left a half-written snapshot a day ago.
	leftover := filepath.Join(filepath.Dir(s1.Dir), ".tmp-0123456789ab-42")
	if err := os.Mkdir(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(leftover, now.Add(-24*time.Hour), now.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}

	// Two hours on, c2 is still asked for (an Application polls it); c1
	// is not. The next commit's fetch removes c1 and the leftover.
	advance(2 * time.Hour)
	if _, ok := f.Cached(url, c2); !ok {
		t.Fatal("c2 is not cached")
	}
	c3 := wt.Write("a.yaml", "v: 3\n").CommitAndPush("three")
	f.Invalidate(url)
	if s3, err := f.Fetch(ctx, url, source.Ref{}, nil); err != nil || s3.Revision != c3 {
		t.Fatalf("fetch main = %+v, %v", s3, err)
	}
	for dir, want := range map[string]bool{s1.Dir: false, s2.Dir: true, leftover: false} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", dir, err == nil, want)
		}
	}
	if _, ok := f.Cached(url, c1); ok {
		t.Error("c1 is still cached")
	}
	// c1 is fetched again when asked for.
	n := f.Fetches()
	s1, err = f.Fetch(ctx, url, source.Ref{Commit: c1}, nil)
	if err != nil || f.Fetches() != n+1 {
		t.Fatalf("fetch c1 again = %+v, %v (fetches %d, want %d)", s1, err, f.Fetches(), n+1)
	}
	if b, err := os.ReadFile(filepath.Join(s1.Dir, "a.yaml")); err != nil || string(b) != "v: 1\n" {
		t.Errorf("c1 again: %q, %v", b, err)
	}

	// A restarted agent knows nothing of what was used: a snapshot counts
	// from its directory's time. Two hours on, a new commit's fetch removes
	// the snapshots it was not asked for.
	advance(2 * time.Hour)
	f2 := source.NewFetcher(source.Options{CacheDir: cacheDir, SnapshotTTL: time.Hour, Now: clock})
	c4 := wt.Write("a.yaml", "v: 4\n").CommitAndPush("four")
	s4, err := f2.Fetch(ctx, url, source.Ref{}, nil)
	if err != nil || s4.Revision != c4 {
		t.Fatalf("fetch main after a restart = %+v, %v", s4, err)
	}
	for dir, want := range map[string]bool{s1.Dir: false, s2.Dir: false, s4.Dir: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("after a restart: %s exists = %v, want %v", dir, err == nil, want)
		}
	}
}

// A repository no Application fetches any more (deleted, or its URL
// spelled another way) has its snapshots removed by the next fetch of any
// other, once unused for their TTL.
func TestSnapshotsOfAnAbandonedURLAreRemoved(t *testing.T) {
	g := testenv.NewGitServer(t)
	for _, name := range []string{"kept", "abandoned"} {
		g.CreateRepo(t, name)
	}
	kept, abandoned := g.Clone(t, "kept"), g.Clone(t, "abandoned")
	kept.Write("a.yaml", "v: 1\n").CommitAndPush("one")
	abandoned.Write("a.yaml", "v: 1\n").CommitAndPush("one")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir(), SnapshotTTL: time.Hour, Now: clock})
	ctx := context.Background()
	old, err := f.Fetch(ctx, g.RepoURL("abandoned"), source.Ref{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same repository under another spelling is another cache entry.
	other, err := f.Fetch(ctx, strings.Replace(g.RepoURL("abandoned"), "://", "://someone@", 1), source.Ref{}, nil)
	if err != nil || other.Dir == old.Dir {
		t.Fatalf("fetch with a user name = %+v, %v", other, err)
	}
	k, err := f.Fetch(ctx, g.RepoURL("kept"), source.Ref{}, nil)
	if err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	c2 := kept.Write("a.yaml", "v: 2\n").CommitAndPush("two")
	f.Invalidate(g.RepoURL("kept"))
	k2, err := f.Fetch(ctx, g.RepoURL("kept"), source.Ref{}, nil)
	if err != nil || k2.Revision != c2 {
		t.Fatalf("fetch kept = %+v, %v", k2, err)
	}
	for dir, want := range map[string]bool{old.Dir: false, other.Dir: false, k.Dir: false, k2.Dir: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", dir, err == nil, want)
		}
	}
}

// Two processes share a cache (two `berth diff` runs): a snapshot one of
// them keeps using is not removed by the other's sweep, which knows it
// only by its directory's time.
func TestASnapshotInUseElsewhereIsKept(t *testing.T) {
	g := testenv.NewGitServer(t)
	for _, name := range []string{"x", "y"} {
		g.CreateRepo(t, name)
	}
	g.Clone(t, "x").Write("a.yaml", "v: 1\n").CommitAndPush("one")
	y := g.Clone(t, "y")
	y.Write("a.yaml", "v: 1\n").CommitAndPush("one")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cache := t.TempDir()
	ctx := context.Background()
	one := source.NewFetcher(source.Options{CacheDir: cache, SnapshotTTL: time.Hour, Now: clock})
	other := source.NewFetcher(source.Options{CacheDir: cache, SnapshotTTL: time.Hour, Now: clock})
	sx, err := one.Fetch(ctx, g.RepoURL("x"), source.Ref{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Fetch(ctx, g.RepoURL("y"), source.Ref{}, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if _, ok := one.Cached(g.RepoURL("x"), sx.Revision); !ok { // still in use by one
		t.Fatal("x is not cached")
	}
	c2 := y.Write("a.yaml", "v: 2\n").CommitAndPush("two")
	other.Invalidate(g.RepoURL("y"))
	if s, err := other.Fetch(ctx, g.RepoURL("y"), source.Ref{}, nil); err != nil || s.Revision != c2 {
		t.Fatalf("fetch y = %+v, %v", s, err)
	}
	if _, err := os.Stat(sx.Dir); err != nil {
		t.Errorf("the other process's sweep removed a snapshot in use: %v", err)
	}
}

// A pinned commit comes with its whole history: a large file deleted long
// ago is no reason to refuse it; the snapshot's own files keep the limit.
func TestPinnedCommitToleratesLargeFilesInItsHistory(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "history")
	wt := g.Clone(t, "history")
	big := strings.Repeat("0123456789abcdef", 1<<17) // 2 MiB
	wt.Write("a.yaml", "v: 1\n").Write("blob.bin", big).CommitAndPush("with a large file")
	c2 := wt.Remove("blob.bin").Write("a.yaml", "v: 2\n").CommitAndPush("without it")
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir(), MaxFileBytes: 1 << 20})
	s, err := f.Fetch(context.Background(), g.RepoURL("history"), source.Ref{Commit: c2}, nil)
	if err != nil {
		t.Fatalf("pinned commit with a large file in its history: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir, "a.yaml")); err != nil || string(b) != "v: 2\n" {
		t.Errorf("a.yaml = %q, %v", b, err)
	}
	// The commit that holds the file is refused: its snapshot would too.
	c1 := strings.TrimSpace(testenv.Git(t, wt.Dir, "rev-parse", "HEAD~1"))
	if _, err := f.Fetch(context.Background(), g.RepoURL("history"), source.Ref{Commit: c1}, nil); !errors.Is(err, source.ErrUnsafe) {
		t.Errorf("pinned commit holding the large file: err = %v, want ErrUnsafe", err)
	}
}

// A repository with more references than the Fetcher takes is refused, by
// count, and over HTTP(S) before its listing is read whole (a listing
// of long names is cut at MaxRefs × 256 bytes).
func TestFetchRefusesTooManyReferences(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "tags")
	wt := g.Clone(t, "tags")
	wt.Write("a.yaml", "v1\n").CommitAndPush("one")
	for i := range 150 {
		testenv.Git(t, wt.Dir, "tag", fmt.Sprintf("v%d", i))
	}
	testenv.Git(t, wt.Dir, "push", "--quiet", "origin", "--tags")
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir(), MaxRefs: 200})
	if _, err := f.Fetch(context.Background(), g.RepoURL("tags"), source.Ref{}, nil); err != nil {
		t.Fatalf("151 references, 200 allowed: %v", err)
	}
	f = source.NewFetcher(source.Options{CacheDir: t.TempDir(), MaxRefs: 100})
	_, err := f.Fetch(context.Background(), g.RepoURL("tags"), source.Ref{}, nil)
	if !errors.Is(err, source.ErrUnsafe) || !strings.Contains(err.Error(), "more than 100") {
		t.Errorf("151 references, 100 allowed: err = %v, want ErrUnsafe with the count", err)
	}

	// 47 references whose names (240 characters) take more than 50 × 256
	// bytes: refused while the listing is read.
	g.CreateRepo(t, "long")
	wt = g.Clone(t, "long")
	wt.Write("a.yaml", "v1\n").CommitAndPush("one")
	for i := range 47 {
		testenv.Git(t, wt.Dir, "tag", fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 236)))
	}
	testenv.Git(t, wt.Dir, "push", "--quiet", "origin", "--tags")
	f = source.NewFetcher(source.Options{CacheDir: t.TempDir(), MaxRefs: 50})
	_, err = f.Fetch(context.Background(), g.RepoURL("long"), source.Ref{}, nil)
	if !errors.Is(err, source.ErrUnsafe) || !strings.Contains(err.Error(), "reference listing is larger than 12 KiB") {
		t.Errorf("a listing of long names: err = %v, want ErrUnsafe while reading it", err)
	}
}

// Over SSH, go-git reads a listing whole too: a server advertising more
// than MaxRefs × 256 bytes of references is cut off while it is read, not
// after (a hostile server could stream references for ever).
func TestFetchOverSSHBoundsTheListing(t *testing.T) {
	g := testenv.NewGitServer(t)
	g.CreateRepo(t, "tags")
	wt := g.Clone(t, "tags")
	wt.Write("a.yaml", "v1\n").CommitAndPush("one")
	// 500 references of about 250 bytes each: 125 KB, past 100 × 256
	// bytes and the handshake's slack.
	for i := range 500 {
		testenv.Git(t, wt.Dir, "tag", fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 200)))
	}
	testenv.Git(t, wt.Dir, "push", "--quiet", "origin", "--tags")
	s := g.ServeSSH(t)
	auth := source.AuthFromSecretData(map[string][]byte{"identity": s.Identity, "known_hosts": s.KnownHosts})
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir(), MaxRefs: 1000})
	if _, err := f.Fetch(context.Background(), s.RepoURL("tags"), source.Ref{}, auth); err != nil {
		t.Fatalf("501 references, 1000 allowed: %v", err)
	}
	f = source.NewFetcher(source.Options{CacheDir: t.TempDir(), MaxRefs: 100})
	_, err := f.Fetch(context.Background(), s.RepoURL("tags"), source.Ref{}, auth)
	if !errors.Is(err, source.ErrUnsafe) || !strings.Contains(err.Error(), "reference listing is larger than 25 KiB") {
		t.Errorf("501 long references, 100 allowed: err = %v, want ErrUnsafe while reading the listing", err)
	}
}

// A server that answers a shallow fetch with endless shallow lines (go-git
// keeps each in memory, with no limit of its own) is cut off once the
// response passes what the pack may take plus a slack.
func TestFetchRefusesAnEndlessResponse(t *testing.T) {
	head := strings.Repeat("ab", 20)
	pkt := func(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs"):
			w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
			fmt.Fprint(w, pkt("# service=git-upload-pack\n")+"0000"+
				pkt(head+" HEAD\x00multi_ack_detailed side-band-64k shallow ofs-delta no-progress\n")+pkt(head+" refs/heads/main\n")+"0000")
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
			line := strings.Repeat(pkt("shallow "+head+"\n"), 1000)
			for range 1000 { // 53 MB, if it were all read
				if _, err := io.WriteString(w, line); err != nil {
					return // the client hung up
				}
				sent.Add(int64(len(line)))
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	f := source.NewFetcher(source.Options{CacheDir: t.TempDir(), MaxTotalBytes: 1 << 20})
	_, err := f.Fetch(context.Background(), srv.URL+"/r.git", source.Ref{}, nil)
	if !errors.Is(err, source.ErrUnsafe) || !strings.Contains(err.Error(), "fetch response is larger than") {
		t.Errorf("err = %v, want ErrUnsafe for the fetch response", err)
	}
	if n := sent.Load(); n > 40<<20 {
		t.Errorf("the server sent %d MiB before the fetch gave up", n>>20)
	}
}

// Only https, http and ssh repositories are fetched: a local path or
// file:// would read the agent's own disk, git:// carries no credentials
// and its reference listing no bound.
func TestFetchRefusesUnsupportedURLs(t *testing.T) {
	local := t.TempDir()
	testenv.Git(t, local, "init", "--quiet", "--bare")
	for _, url := range []string{local, "file://" + local, "git://127.0.0.1:9/x.git", "ftp://127.0.0.1/x.git", "https:///x.git"} {
		f := source.NewFetcher(source.Options{CacheDir: t.TempDir()})
		if _, err := f.Fetch(context.Background(), url, source.Ref{}, nil); !errors.Is(err, source.ErrUnsupportedURL) {
			t.Errorf("Fetch(%q) = %v, want ErrUnsupportedURL", url, err)
		}
		if _, err := f.Resolve(context.Background(), url, source.Ref{}, nil); !errors.Is(err, source.ErrUnsupportedURL) {
			t.Errorf("Resolve(%q) = %v, want ErrUnsupportedURL", url, err)
		}
	}
	for _, url := range []string{"https://git.example.test/org/repo.git", "http://127.0.0.1:3000/x.git", "ssh://git@git.example.test:2222/org/repo.git", "git@git.example.test:org/repo.git"} {
		if err := source.CheckURL(url); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", url, err)
		}
	}
}
