package catalog

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// secretQueue is how many files may wait for the secret scan (each a copy
// of at most Options.MaxSecretFileSize bytes).
const secretQueue = 16

// secretJob is one file version to search for secrets.
type secretJob struct {
	seq     int
	path    string
	content []byte
}

// secretResult is what the secret scan found in one file version.
type secretResult struct {
	seq     int
	secrets []Secret
	warning string
}

// secretScan searches files for secrets on worker goroutines while the
// layer walk goes on: the gitleaks rules cost as much CPU as decompressing
// the layer, and the walk would otherwise wait for them. Results are tied to
// a file version (seq) and attached when the walk is done, so a path
// rewritten or hard-linked later in the same layer gets what its final
// content holds.
type secretScan struct {
	jobs    chan secretJob
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []secretResult
	closed  bool
}

func newSecretScan() *secretScan {
	s := &secretScan{jobs: make(chan secretJob, secretQueue)}
	// One core decompresses the layer; the others search.
	workers := max(1, runtime.GOMAXPROCS(0)-1)
	for range workers {
		s.wg.Go(s.work)
	}
	return s
}

func (s *secretScan) work() {
	for j := range s.jobs {
		r := secretResult{seq: j.seq}
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.secrets = nil
					r.warning = fmt.Sprintf("/%s: secret scan failed on malformed content: %v", j.path, v)
				}
			}()
			r.secrets = findSecrets(j.path, j.content)
		}()
		if len(r.secrets) > 0 || r.warning != "" {
			s.mu.Lock()
			s.results = append(s.results, r)
			s.mu.Unlock()
		}
	}
}

// add queues a copy of content (the caller reuses its buffer).
func (s *secretScan) add(seq int, path string, content []byte) {
	s.jobs <- secretJob{seq: seq, path: path, content: slices.Clone(content)}
}

// wait stops the workers once the queue is empty and returns the results
// in file order. It is safe to call more than once.
func (s *secretScan) wait() []secretResult {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.jobs)
	}
	s.mu.Unlock()
	s.wg.Wait()
	slices.SortFunc(s.results, func(a, b secretResult) int { return a.seq - b.seq })
	return s.results
}

// attachSecrets waits for the secret scan and adds its findings to the
// layer record: to every path whose final version in this layer is the
// scanned content, directly or through hard links.
func (w *walker) attachSecrets() {
	if w.secrets == nil {
		return
	}
	bySeq := map[int][]Secret{}
	for _, r := range w.secrets.wait() {
		if r.warning != "" {
			w.warnf("%s", r.warning)
		}
		if len(r.secrets) > 0 {
			bySeq[r.seq] = r.secrets
		}
	}
	if len(bySeq) == 0 {
		return
	}
	paths := make([]string, 0, len(w.latest))
	for p := range w.latest {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		found := bySeq[w.contentOf[w.latest[p]]]
		if len(found) == 0 {
			continue
		}
		out := make([]Secret, len(found))
		for i, s := range found {
			s.Path = "/" + p
			out[i] = s
		}
		if i, ok := w.files[p]; ok {
			w.rec.Files[i].Secrets = out
			continue
		}
		w.add(fileRecord{Path: p, Secrets: out})
	}
}
