package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// minFreeBytes is the free space a cold build needs: Go's build cache grows by
// about 3.6 GB while compiling Kubernetes, and the binaries take ~400 MB.
const minFreeBytes = 5 << 30

// Binaries locates the compiled sandbox components.
type Binaries struct {
	// Dir holds one executable per component, named after it.
	Dir string
}

// Path returns the executable of component.
func (b Binaries) Path(component string) string {
	return filepath.Join(b.Dir, component)
}

// complete reports whether every component's executable exists.
func (b Binaries) complete() bool {
	for _, c := range Components {
		if fi, err := os.Stat(b.Path(c)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// BuildOptions configures Build.
type BuildOptions struct {
	// CacheDir is the root of the binary cache; binaries go to
	// CacheDir/<versions-and-hash>/bin. Empty means DefaultCacheDir().
	CacheDir string
	// Progress receives progress lines; nil means quiet.
	Progress io.Writer
	// Interactive rewrites a single progress line (a terminal) instead of
	// printing a line per step (a CI log).
	Interactive bool
}

// DefaultCacheDir returns $BERTH_CACHE_DIR, or berth/sandbox under the
// user's cache directory.
func DefaultCacheDir() string {
	if d := os.Getenv("BERTH_CACHE_DIR"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "berth", "sandbox")
}

// target is one `go build` invocation inside one embedded module.
type target struct {
	module   string   // directory under modules/
	packages []string // import paths, or "." for the module's main package
	outputs  []string // component names produced
	ldflags  string
}

var targets = []target{
	{module: "etcd", packages: []string{"."}, outputs: []string{Etcd}, ldflags: "-s -w"},
	{module: "kwok", packages: []string{"sigs.k8s.io/kwok/cmd/kwok"}, outputs: []string{Kwok},
		ldflags: "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=" + KwokVersion},
	{module: "k8s", packages: []string{
		"k8s.io/kubernetes/cmd/kube-apiserver",
		"k8s.io/kubernetes/cmd/kube-controller-manager",
		"k8s.io/kubernetes/cmd/kube-scheduler",
	}, outputs: []string{APIServer, ControllerManager, Scheduler}, ldflags: ldflagsK8s()},
}

// Build compiles every sandbox component from the Go module proxy unless the
// cache already holds them, and returns where they are. Concurrent calls (for
// example from parallel test binaries) are serialised with a file lock, so the
// components are compiled once.
func Build(ctx context.Context, opts BuildOptions) (Binaries, error) {
	root := opts.CacheDir
	if root == "" {
		root = DefaultCacheDir()
	}
	dir := filepath.Join(root, buildKey())
	bins := Binaries{Dir: filepath.Join(dir, "bin")}
	if bins.complete() {
		return bins, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return bins, fmt.Errorf("creating sandbox cache: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, "build.lock"), opts.Progress)
	if err != nil {
		return bins, err
	}
	defer unlock()
	if bins.complete() {
		return bins, nil
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		return bins, errors.New("the sandbox compiles Kubernetes from source and needs the Go toolchain: no `go` on PATH")
	}
	gocache, err := goEnv(ctx, goBin, "GOCACHE")
	if err != nil {
		return bins, err
	}
	for _, d := range []string{gocache, dir} {
		if err := checkFree(d); err != nil {
			return bins, err
		}
	}

	p := newProgress(opts.Progress, opts.Interactive)
	p.printf("compiling the sandbox (Kubernetes %s, etcd %s, kwok %s) into %s\n", KubernetesVersion, EtcdVersion, KwokVersion, bins.Dir)
	p.printf("a cold build takes 6-12 minutes on 2 cores and ~4 GB in Go's build cache; later builds reuse that cache\n")
	start := time.Now()
	for _, t := range targets {
		if err := buildTarget(ctx, goBin, dir, bins.Dir, t, p); err != nil {
			return bins, err
		}
	}
	p.printf("sandbox components compiled in %s\n", time.Since(start).Round(time.Second))
	return bins, nil
}

func buildTarget(ctx context.Context, goBin, dir, binDir string, t target, p *progress) error {
	src := filepath.Join(dir, "src", t.module)
	if err := writeModule(t.module, src); err != nil {
		return err
	}
	name := strings.Join(t.outputs, ", ")
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")

	// Count the packages that will really be compiled, for an honest progress figure.
	list := exec.CommandContext(ctx, goBin, append([]string{"list", "-deps", "-f", "{{if .Stale}}x{{end}}"}, t.packages...)...)
	list.Dir, list.Env = src, env
	out, err := list.Output()
	if err != nil {
		return fmt.Errorf("resolving the %s build (module %s): %w%s", name, src, err, stderrOf(err))
	}
	stale := strings.Count(string(out), "x")

	tmp, err := os.MkdirTemp(dir, "bin-")
	if err != nil {
		return fmt.Errorf("creating build output directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	logPath := filepath.Join(dir, "build-"+t.module+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating build log: %w", err)
	}
	defer func() { _ = logFile.Close() }()

	outArg := tmp + string(filepath.Separator)
	if len(t.packages) == 1 {
		outArg = filepath.Join(tmp, t.outputs[0])
	}
	args := append([]string{"build", "-v", "-ldflags", t.ldflags, "-o", outArg}, t.packages...)
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir, cmd.Env = src, env
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = logFile, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the %s build: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		n := 0
		begin := time.Now()
		p.step(name, n, stale, begin)
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if !strings.Contains(sc.Text(), " ") { // -v prints bare import paths
				n++
				p.step(name, n, stale, begin)
			}
		}
		p.finish(name, n, begin)
	}()
	werr := cmd.Wait()
	_ = pw.Close()
	<-done
	if werr != nil {
		return fmt.Errorf("compiling %s failed: %w; see %s", name, werr, logPath)
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", binDir, err)
	}
	for _, o := range t.outputs {
		if err := os.Rename(filepath.Join(tmp, o), filepath.Join(binDir, o)); err != nil {
			return fmt.Errorf("installing %s: %w", o, err)
		}
	}
	return nil
}

// writeModule writes the embedded build module name into dir, dropping the
// .txt suffix that keeps the files from being a nested module of berth's own.
func writeModule(name, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	root := path.Join("modules", name)
	entries, err := fs.ReadDir(modulesFS, root)
	if err != nil {
		return fmt.Errorf("reading embedded module %s: %w", name, err)
	}
	for _, e := range entries {
		b, err := modulesFS.ReadFile(path.Join(root, e.Name()))
		if err != nil {
			return fmt.Errorf("reading embedded module %s: %w", name, err)
		}
		dst := filepath.Join(dir, strings.TrimSuffix(e.Name(), ".txt"))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", dst, err)
		}
	}
	return nil
}

func goEnv(ctx context.Context, goBin, key string) (string, error) {
	out, err := exec.CommandContext(ctx, goBin, "env", key).Output()
	if err != nil {
		return "", fmt.Errorf("running go env %s: %w%s", key, err, stderrOf(err))
	}
	return strings.TrimSpace(string(out)), nil
}

// checkFree fails when the file system holding dir has less room than a cold
// build needs.
func checkFree(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err == nil {
			free := st.Bavail * uint64(max(st.Bsize, 0)) //nolint:gosec // block size is positive
			if free < minFreeBytes {
				return fmt.Errorf("not enough disk space to compile the sandbox: %.1f GB free under %s, a cold build needs about %.0f GB", float64(free)/1e9, d, float64(minFreeBytes)/1e9)
			}
			return nil
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// lockFile takes an exclusive flock on path, waiting for other holders.
func lockFile(ctx context.Context, p string, progress io.Writer) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", p, err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", p, err)
		}
		if !told && progress != nil {
			fmt.Fprintf(progress, "waiting for another process compiling the sandbox (%s)\n", p)
			told = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
