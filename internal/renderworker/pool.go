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
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
	// Timeout bounds one render.
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
	// Reason is "memory" or "timeout".
	Reason string
	// Limit is the limit passed, as people read it ("256 MiB", "1m0s").
	Limit string
}

func (e *LimitError) Error() string {
	if e.Reason == "memory" {
		return fmt.Sprintf("the render was stopped: it used more than %s of memory (the agent's --render-memory-limit)", e.Limit)
	}
	return fmt.Sprintf("the render was stopped: it ran longer than %s (the agent's --render-timeout)", e.Limit)
}

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
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.idle.Stop()
		return w, nil
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
	out    *json.Decoder
	stderr *stderrHead
	idle   *time.Timer
	// broken marks a worker that must not serve again: stopped, crashed,
	// or out of step with the protocol.
	broken bool
}

func (p *Pool) start() (*worker, error) {
	cmd := exec.Command(p.o.Command[0], p.o.Command[1:]...) //nolint:gosec,noctx // the agent's own executable (or a test's); it outlives a render, and the Pool stops it
	// The worker's garbage collector works to stay under the limit before
	// the Pool has to stop it.
	cmd.Env = append(append(os.Environ(), p.o.Env...), "GOMEMLIMIT="+strconv.FormatInt(p.o.MemoryLimit*3/4, 10))
	setParentDeathSignal(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errTail := &stderrHead{max: 1024}
	cmd.Stderr = errTail
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a render worker (%s): %w", p.o.Command[0], err)
	}
	budget := &budgetReader{r: bufio.NewReaderSize(stdout, 64<<10)}
	return &worker{cmd: cmd, stdin: stdin, in: json.NewEncoder(stdin), budget: budget, out: json.NewDecoder(budget), stderr: errTail}, nil
}

// stop ends the process and waits for it.
func (w *worker) stop() {
	w.broken = true
	_ = w.stdin.Close()
	_ = w.cmd.Process.Kill()
	_ = w.cmd.Wait()
}

// run sends one render to w and serves its lookups until its answer, while
// a watchdog stops it at a limit or when ctx ends. The render's own error
// (a template's, a file's) is returned as is; the worker serves again.
func (p *Pool) run(parent context.Context, w *worker, dir string, opts render.Options) (*result, error) {
	ctx, cancel := context.WithTimeout(parent, p.o.Timeout)
	defer cancel()
	w.stderr.reset()
	var (
		killed *LimitError
		done   = make(chan struct{})
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				if parent.Err() == nil {
					killed = &LimitError{Reason: "timeout", Limit: p.o.Timeout.String()}
				}
				_ = w.cmd.Process.Kill()
				return
			case <-tick.C:
				if n, err := anonymousMemory(w.cmd.Process.Pid); err == nil && n > p.o.MemoryLimit {
					killed = &LimitError{Reason: "memory", Limit: fmt.Sprintf("%d MiB", p.o.MemoryLimit>>20)}
					_ = w.cmd.Process.Kill()
					return
				}
			}
		}
	})
	res, renderErr, err := p.exchange(w, dir, opts)
	close(done)
	wg.Wait()
	if err == nil && killed == nil && ctx.Err() == nil {
		return res, renderErr
	}
	// The worker is out of step, or gone: it serves no more.
	w.stop()
	switch {
	case killed != nil:
		p.stopped(killed.Reason)
		return nil, killed
	case parent.Err() != nil:
		return nil, parent.Err()
	case errors.Is(err, errTooLarge):
		return nil, fmt.Errorf("the render was stopped: it returned more than %d MiB", p.o.MaxResultBytes>>20)
	}
	p.stopped("crash")
	msg := w.cmd.ProcessState.String()
	if t := w.stderr.String(); t != "" {
		msg += ": " + t
	}
	return nil, fmt.Errorf("the render process ended (%s) before it answered: %w", msg, err)
}

func (p *Pool) stopped(reason string) {
	if p.o.Stopped != nil {
		p.o.Stopped(reason)
	}
}

var errTooLarge = errors.New("answer too large")

// exchange is the protocol: a render request, lookups answered in turn,
// then a result or the render's error (renderErr). err is the exchange's
// own: a pipe that broke, an answer out of step.
func (p *Pool) exchange(w *worker, dir string, opts render.Options) (res *result, renderErr, err error) {
	if err := w.in.Encode(message{Render: &renderCall{Dir: dir, Options: opts, Lookup: opts.Lookup != nil}}); err != nil {
		return nil, nil, err
	}
	for {
		w.budget.left = p.o.MaxResultBytes
		var m message
		if err := w.out.Decode(&m); err != nil {
			if w.budget.left < 0 {
				return nil, nil, errTooLarge
			}
			return nil, nil, err
		}
		switch {
		case m.Lookup != nil:
			reply := &lookupReply{}
			if opts.Lookup == nil {
				reply.Error = "lookup is not served"
			} else if obj, err := opts.Lookup(m.Lookup.APIVersion, m.Lookup.Kind, m.Lookup.Namespace, m.Lookup.Name); err != nil {
				reply.Error = err.Error()
			} else {
				reply.Object = obj
			}
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
		u := &unstructured.Unstructured{}
		// Numbers come back as float64, as the render's YAML decoder
		// (sigs.k8s.io/yaml) made them.
		if err := json.Unmarshal(o.Object, &u.Object); err != nil {
			return nil, &manifest.Error{Source: o.Source, Err: err}
		}
		out = append(out, manifest.Object{Object: u, Source: o.Source})
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
