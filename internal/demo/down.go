package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/berth-dev/berth/internal/apps"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Down stops the agent and the Git server that Up started, by PID, then the
// sandbox when Up started it (one it found running, from `berth sandbox
// up`, is left running). Files are kept, so the next Up resumes the same
// cluster and repository. It returns what it stopped: nothing, without an
// error, when Up never ran in dir.
func Down(ctx context.Context, dir string) ([]string, error) {
	var stopped []string
	st, err := load(dir)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, nil
	}
	names := make([]string, 0, len(st.Processes))
	for n := range st.Processes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if st.Processes[n].stop() {
			stopped = append(stopped, n)
		}
	}
	st.Processes = map[string]Proc{}
	if err := st.save(); err != nil {
		return stopped, err
	}
	if !st.startedSandbox() {
		return stopped, nil
	}
	more, err := sandbox.Down(ctx, dir)
	if errors.Is(err, sandbox.ErrNoSandbox) {
		err = nil
	}
	if err == nil {
		// Stopped: a sandbox running here next was started by someone
		// else.
		st.setStartedSandbox(false)
		err = st.save()
	}
	return append(stopped, more...), err
}

// Describe prints what runs where and how to push a change.
func Describe(ctx context.Context, st *State, w io.Writer) error {
	conn := apps.Connection{Kubeconfig: sandbox.KubeconfigPath(st.Dir)}
	c, _, _, err := conn.Client()
	if err != nil {
		return err
	}
	list, err := apps.List(ctx, c, Namespace)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nberth is up: %d Applications Ready in %s.\n\n", len(list), time.Since(st.Started).Round(100*time.Millisecond))
	apps.PrintTable(w, list, false, time.Now())
	kc := sandbox.KubeconfigPath(st.Dir)
	self, _ := os.Executable()
	fmt.Fprintf(w, `
Git repository: %s   (agent webhook: %s)
Kubeconfig:     %s

Push a change and watch it arrive:
  git clone %s gitops && cd gitops
  sed -i 's/Hello from Git/Hello again/' guestbook/config.yaml
  git commit -qam "change greeting" && git push -q
  %s get apps -n %s -w --kubeconfig %s

Stop everything with: %s down
`, st.GitURL, st.WebhookURL, kc, st.GitURL, self, Namespace, kc, self)
	return nil
}
