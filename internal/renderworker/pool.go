package renderworker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/manifest"
	"github.com/berth-dev/berth/internal/render"
)

// Options configure a Pool.
type Options struct {
	// Command is the worker's program and arguments; it must run Serve on
	// its stdin and stdout. Default: this executable, `render-worker`.
	Command []string
	// Env is added to the environment a worker inherits.
	Env []string
	// MemoryLimit is how much memory of its own (anonymous resident
	// memory: not the binary's pages, which it shares with the agent) a
	// worker may use during a render.
	MemoryLimit int64
	// Timeout bounds one render's own time: the lookups it asks the
	// caller for are not counted (the caller bounds them).
	Timeout time.Duration
	// Workers is how many renders run at once; more wait for a worker.
	Workers int
	// IdleTimeout is how long an unused worker lives.
	IdleTimeout time.Duration
	// MaxResultBytes bounds what one render may return.
	MaxResultBytes int64
	// Stopped, when set, is told the reason ("memory", "timeout", "crash")
	// each time a worker is stopped or ends during a render.
	Stopped func(reason string)
}

// Defaults of DefaultOptions.
const (
	DefaultMemoryLimit    = 256 << 20
	DefaultTimeout        = time.Minute
	DefaultIdleTimeout    = time.Minute
	DefaultMaxResultBytes = 64 << 20
)

// DefaultOptions returns the defaults: this executable as the worker, 256
// MiB and one minute per render, two workers (one where there is one CPU).
// A chart renders once per commit and an overlay once per poll, in
// milliseconds: more workers would mostly hold memory.
func DefaultOptions() Options {
	return Options{
		MemoryLimit:    DefaultMemoryLimit,
		Timeout:        DefaultTimeout,
		Workers:        min(runtime.GOMAXPROCS(0), 2),
		IdleTimeout:    DefaultIdleTimeout,
		MaxResultBytes: DefaultMaxResultBytes,
	}
}

// LimitError is a render stopped because it went past a limit. The same
// chart, values and commit will go past it again.
type LimitError struct {
	// Reason is "memory", "timeout" or "size".
	Reason string
	// Limit is the limit passed, as people read it ("256 MiB", "1m0s").
	Limit string
}

func (e *LimitError) Error() string {
	switch e.Reason {
	case "memory":
		return fmt.Sprintf("the render was stopped: it used more than %s of memory (the agent's --render-memory-limit)", e.Limit)
	case "size":
		return fmt.Sprintf("the render was stopped: it returned more than %s", e.Limit)
	}
	return fmt.Sprintf("the render was stopped: it ran longer than %s, lookups not counted (the agent's --render-timeout)", e.Limit)
}

// ErrClosed is returned by Render once the Pool is closed.
var ErrClosed = errors.New("the render pool is closed")

// Pool runs renders in worker processes. It is safe for concurrent use.
type Pool struct {
	o     Options
	slots chan struct{}

	mu     sync.Mutex
	idle   []*worker
	closed bool
}

// New returns a Pool; workers start at the first render that needs one.
func New(o Options) (*Pool, error) {
	d := DefaultOptions()
	if len(o.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the berth executable for render workers: %w", err)
		}
		o.Command = []string{exe, "render-worker"}
	}
	if o.MemoryLimit <= 0 {
		o.MemoryLimit = d.MemoryLimit
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.Workers <= 0 {
		o.Workers = d.Workers
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.MaxResultBytes <= 0 {
		o.MaxResultBytes = d.MaxResultBytes
	}
	return &Pool{o: o, slots: make(chan struct{}, o.Workers)}, nil
}

// Render renders dir as render.Render does, in a worker. The result's
// objects are decoded from JSON, as the agent keeps renders; a Helm
// chart's HelmChart (the chart and its values, for the install) is loaded
// here, since a chart cannot cross a pipe. opts.Lookup, when set, is called
// from here for each `lookup` the chart makes.
func (p *Pool) Render(ctx context.Context, dir string, opts render.Options) (*render.Result, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.slots }()
	w, err := p.take()
	if err != nil {
		return nil, err
	}
	res, err := p.run(ctx, w, dir, opts)
	if !w.broken { // run stopped a broken one
		p.put(w)
	}
	if err != nil {
		return nil, err
	}
	out := &render.Result{Kind: res.Kind}
	if out.Objects, err = fromObjects(res.Objects); err != nil {
		return nil, err
	}
	if out.HelmHooks, err = fromObjects(res.Hooks); err != nil {
		return nil, err
	}
	if res.Kind == render.Helm {
		if out.Helm, err = render.LoadChart(dir, opts); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Close stops the idle workers; a busy one stops when its render ends.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.stop()
	}
}

func (p *Pool) take() (*worker, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for n := len(p.idle); n > 0; n = len(p.idle) {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		w.idle.Stop()
		select {
		case <-w.exited:
			continue // died while idle (the kernel's OOM killer): not this render's fault
		default:
			p.mu.Unlock()
			return w, nil
		}
	}
	p.mu.Unlock()
	return p.start()
}

func (p *Pool) put(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		go w.stop()
		return
	}
	p.idle = append(p.idle, w)
	w.idle = time.AfterFunc(p.o.IdleTimeout, func() {
		p.mu.Lock()
		for i, x := range p.idle {
			if x == w {
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				p.mu.Unlock()
				w.stop()
				return
			}
		}
		p.mu.Unlock() // taken meanwhile
	})
}

// worker is one process and its pipes.
type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	in     *json.Encoder
	budget *budgetReader
	stderr *stderrHead
	idle   *time.Timer
	// exited is closed once the process has ended and been waited for
	// (cmd.ProcessState is set).
	exited chan struct{}
	// broken marks a worker that must not serve again: stopped, crashed,
	// or out of step with the protocol.
	broken bool
}

// DataLimitEnv names the hard limit, in bytes over what the Go runtime
// maps at its start, that ServeProcess sets on its own process's data
// (RLIMIT_DATA): a single allocation larger than that fails in the worker
// at once ("fatal error: runtime: out of memory"), before the Pool's
// watchdog could see it grow. The Pool sets one and a half times its
// memory limit: the data limit counts memory mapped (a Go heap maps more
// than it uses), the watchdog memory used.
const DataLimitEnv = "BERTH_RENDER_DATA_LIMIT"

// workerEnv is what a worker inherits of the agent's environment: what a
// process needs to run, nothing of the agent's configuration.
var workerEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ"}

func (p *Pool) start() (*worker, error) {
	cmd := exec.Command(p.o.Command[0], p.o.Command[1:]...) //nolint:gosec,noctx // the agent's own executable (or a test's); it outlives a render, and the Pool stops it
	for _, k := range workerEnv {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	// The worker's garbage collector works to stay under the limit before
	// the Pool has to stop it.
	cmd.Env = append(append(cmd.Env, p.o.Env...),
		"GOMEMLIMIT="+strconv.FormatInt(p.o.MemoryLimit*3/4, 10),
		DataLimitEnv+"="+strconv.FormatInt(p.o.MemoryLimit*3/2, 10))
	setParentDeathSignal(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errHead := &stderrHead{max: 1024}
	cmd.Stderr = errHead
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a render worker (%s): %w", p.o.Command[0], err)
	}
	w := &worker{cmd: cmd, stdin: stdin, in: json.NewEncoder(stdin), stderr: errHead, exited: make(chan struct{}),
		budget: &budgetReader{r: bufio.NewReaderSize(stdout, 64<<10)}}
	// Waited for at once, so a worker that dies while idle is reaped and
	// known. Wait closes stdout only once the process has ended, when
	// nothing more is read from it.
	go func() {
		_ = cmd.Wait()
		close(w.exited)
	}()
	return w, nil
}

// stop ends the process and waits for it.
func (w *worker) stop() {
	w.broken = true
	_ = w.stdin.Close()
	_ = w.cmd.Process.Kill()
	<-w.exited
}

// run sends one render to w and serves its lookups until its answer, while
// a watchdog stops it at a limit or when the caller's ctx ends. The time
// limit counts the worker's own time: not the lookups the agent answers
// (the API server's time, bounded by the caller). The render's own error
// (a template's, a file's) is returned as is; the worker serves again.
func (p *Pool) run(ctx context.Context, w *worker, dir string, opts render.Options) (*result, error) {
	w.stderr.reset()
	var (
		inLookup atomic.Bool
		killed   *LimitError
		stopped  bool // by the watchdog, for any reason
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		const step = 25 * time.Millisecond
		tick := time.NewTicker(step)
		defer tick.Stop()
		var spent time.Duration
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				stopped = true
				_ = w.cmd.Process.Kill()
				return
			case now := <-tick.C:
				if !inLookup.Load() {
					spent += now.Sub(last)
				}
				last = now
				switch n, err := anonymousMemory(w.cmd.Process.Pid); {
				case err == nil && n > p.o.MemoryLimit:
					killed = &LimitError{Reason: "memory", Limit: mib(p.o.MemoryLimit)}
				case spent > p.o.Timeout:
					killed = &LimitError{Reason: "timeout", Limit: p.o.Timeout.String()}
				default:
					continue
				}
				stopped = true
				_ = w.cmd.Process.Kill()
				return
			}
		}
	})
	res, renderErr, err := p.exchange(w, dir, opts, &inLookup)
	close(done)
	wg.Wait()
	if err == nil && !stopped {
		return res, renderErr
	}
	// The worker is out of step, or gone: it serves no more.
	w.stop()
	var le *LimitError
	switch {
	case killed != nil:
		le = killed
	case errors.Is(err, errTooLarge):
		le = &LimitError{Reason: "size", Limit: mib(p.o.MaxResultBytes)}
	case strings.Contains(w.stderr.String(), "out of memory") || strings.Contains(w.stderr.String(), "failed to allocate"):
		// The data limit ended it for memory (the Go runtime's message;
		// the race detector's runtime words it the second way).
		le = &LimitError{Reason: "memory", Limit: mib(p.o.MemoryLimit)}
	case err == nil:
		return res, renderErr // answered as the caller gave up: still an answer
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	if le != nil {
		p.stopped(le.Reason)
		return nil, le
	}
	p.stopped("crash")
	msg := w.cmd.ProcessState.String()
	if t := w.stderr.String(); t != "" {
		msg += ": " + t
	}
	return nil, fmt.Errorf("the render process ended (%s) before it answered: %w", msg, err)
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

func (p *Pool) stopped(reason string) {
	if p.o.Stopped != nil {
		p.o.Stopped(reason)
	}
}

var errTooLarge = errors.New("answer too large")

// exchange is the protocol: a render request, lookups answered in turn,
// then a result or the render's error (renderErr). err is the exchange's
// own: a pipe that broke, an answer out of step. The two sides take turns,
// so nothing is read ahead of an answer; each exchange decodes afresh and
// keeps no buffer the size of the last answer.
func (p *Pool) exchange(w *worker, dir string, opts render.Options, inLookup *atomic.Bool) (res *result, renderErr, err error) {
	if err := w.in.Encode(message{Render: &renderCall{Dir: dir, Options: opts, Lookup: opts.Lookup != nil}}); err != nil {
		return nil, nil, err
	}
	out := json.NewDecoder(w.budget)
	for {
		w.budget.left = p.o.MaxResultBytes
		var m message
		if err := out.Decode(&m); err != nil {
			if w.budget.left < 0 {
				return nil, nil, errTooLarge
			}
			return nil, nil, err
		}
		switch {
		case m.Lookup != nil:
			reply := &lookupReply{}
			inLookup.Store(true)
			if opts.Lookup == nil {
				reply.Error = "lookup is not served"
			} else if obj, err := opts.Lookup(m.Lookup.APIVersion, m.Lookup.Kind, m.Lookup.Namespace, m.Lookup.Name); err != nil {
				reply.Error = err.Error()
			} else {
				reply.Object = obj
			}
			inLookup.Store(false)
			if err := w.in.Encode(message{Reply: reply}); err != nil {
				return nil, nil, err
			}
		case m.Result != nil:
			return m.Result, nil, nil
		case m.Failure != nil:
			return nil, m.Failure.err(), nil
		default:
			return nil, nil, errors.New("protocol: an empty answer")
		}
	}
}

func fromObjects(objs []object) ([]manifest.Object, error) {
	out := make([]manifest.Object, 0, len(objs))
	for _, o := range objs {
		m, err := manifest.FromJSON(o.Object, o.Source)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// budgetReader fails once more than left bytes are read.
type budgetReader struct {
	r    io.Reader
	left int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

// stderrHead keeps the first max bytes written to it since its last reset: a
// crash's message comes first (a Go runtime's "fatal error: stack
// overflow"), its stack after.
type stderrHead struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *stderrHead) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *stderrHead) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = t.b[:0]
}

// String is the first lines written, up to the first empty line.
func (t *stderrHead) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.b)
	if i := strings.Index(s, "\n\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
