package sandbox

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress reports compilation progress: one rewritten line on a terminal,
// a line per 10% (at most one a minute otherwise) in a CI log.
type progress struct {
	mu          sync.Mutex
	w           io.Writer
	interactive bool
	lastLine    time.Time
	lastPct     int
}

func newProgress(w io.Writer, interactive bool) *progress {
	return &progress{w: w, interactive: interactive}
}

func (p *progress) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// step reports that n of total packages of name are compiled.
func (p *progress) step(name string, n, total int, begin time.Time) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	elapsed := time.Since(begin)
	pct := 0
	if total > 0 {
		pct = min(100, n*100/total)
	}
	eta := ""
	if n >= 20 && total > n && elapsed > 10*time.Second {
		left := time.Duration(float64(elapsed) / float64(n) * float64(total-n))
		eta = fmt.Sprintf(", ~%s left", left.Round(time.Minute/6))
	}
	line := fmt.Sprintf("compiling %s: %d/%d packages (%d%%), %s elapsed%s", name, n, total, pct, elapsed.Round(time.Second), eta)
	if p.interactive {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		return
	}
	if n == 0 || pct >= p.lastPct+10 || time.Since(p.lastLine) > time.Minute {
		fmt.Fprintln(p.w, line)
		p.lastLine, p.lastPct = time.Now(), pct-pct%10
	}
}

func (p *progress) finish(name string, n int, begin time.Time) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.interactive {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "compiled %s (%d packages) in %s\n", name, n, time.Since(begin).Round(time.Second))
	p.lastPct = 0
}
