package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// LogOptions configures Logs.
type LogOptions struct {
	// Follow keeps printing as the log grows until ctx ends.
	Follow bool
	// Tail is the number of lines printed from the end; negative means all.
	Tail int
}

// ListLogs writes the log file of every component of the sandbox in dir.
func ListLogs(dir string, w io.Writer) error {
	if _, err := Load(dir); err != nil {
		return err
	}
	for _, c := range Components {
		fmt.Fprintf(w, "%-24s %s\n", c, LogPath(dir, c))
	}
	return nil
}

// Logs writes the log of component in the sandbox in dir to w.
func Logs(ctx context.Context, dir, component string, w io.Writer, opts LogOptions) error {
	if !slices.Contains(Components, component) {
		return fmt.Errorf("unknown component %q (one of %v)", component, Components)
	}
	f, err := os.Open(LogPath(dir, component))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s has no log yet in %s: %w", component, dir, ErrNoSandbox)
	}
	if err != nil {
		return fmt.Errorf("opening %s log: %w", component, err)
	}
	defer f.Close()
	if opts.Tail >= 0 {
		var ring []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ring = append(ring, sc.Text())
			if len(ring) > opts.Tail {
				ring = ring[1:]
			}
		}
		for _, l := range ring {
			fmt.Fprintln(w, l)
		}
	} else if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("reading %s log: %w", component, err)
	}
	for opts.Follow {
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("reading %s log: %w", component, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(300 * time.Millisecond):
		}
	}
	return nil
}
