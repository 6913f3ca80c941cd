package application

import (
	"time"

	"github.com/go-logr/logr"
)

// phases times the steps of one reconcile, to explain slow ones in the log.
type phases struct {
	start, last time.Time
	names       []string
	took        []time.Duration
}

func newPhases() *phases {
	now := time.Now()
	return &phases{start: now, last: now}
}

func (p *phases) mark(name string) {
	now := time.Now()
	p.names = append(p.names, name)
	p.took = append(p.took, now.Sub(p.last))
	p.last = now
}

// logIfSlow logs the breakdown when the whole reconcile took longer than d.
func (p *phases) logIfSlow(log logr.Logger, d time.Duration) {
	total := time.Since(p.start)
	if total < d {
		return
	}
	kv := []any{"total", total.Round(time.Millisecond).String()}
	for i, n := range p.names {
		kv = append(kv, n, p.took[i].Round(time.Millisecond).String())
	}
	log.Info("slow reconcile", kv...)
}
