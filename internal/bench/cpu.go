package bench

import (
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

// cpuSnapshot is the CPU time each named process has used so far.
type cpuSnapshot map[string]time.Duration

// processes names the sandbox's component processes, this bench process
// (its client and watches), and the agent when agentPID is set.
func processes(st *sandbox.State, agentPID int) map[string]int {
	out := map[string]int{}
	for name, p := range st.Processes {
		if p.PID > 0 {
			out[name] = p.PID
		}
	}
	out["bench"] = os.Getpid()
	if agentPID > 0 {
		out["agent"] = agentPID
	}
	return out
}

// readCPU reads the CPU time of every process in pids; one that cannot be
// read (it exited) is left out.
func readCPU(pids map[string]int) cpuSnapshot {
	s := cpuSnapshot{}
	for name, pid := range pids {
		if d, err := processCPU(pid); err == nil {
			s[name] = d
		}
	}
	return s
}

// printCPU prints the CPU each process used between two snapshots, per
// app, and how much of the machine's cores the run used over wall.
func printCPU(w io.Writer, label string, before, after cpuSnapshot, n int, wall time.Duration, cores int) {
	names := make([]string, 0, len(after))
	var total time.Duration
	for name, d := range after {
		if b, ok := before[name]; ok && d >= b {
			names = append(names, name)
			total += d - b
		}
	}
	slices.SortFunc(names, func(a, b string) int { return int((after[b] - before[b]) - (after[a] - before[a])) })
	fmt.Fprintf(w, "%s: %.1f s of CPU in %s (%.0f%% of %d cores), %.1f ms per app:", label, total.Seconds(), wall.Round(100*time.Millisecond),
		100*total.Seconds()/(wall.Seconds()*float64(cores)), cores, float64(total.Microseconds())/1000/float64(n))
	for _, name := range names {
		d := after[name] - before[name]
		fmt.Fprintf(w, " %s %.1f ms", name, float64(d.Microseconds())/1000/float64(n))
	}
	fmt.Fprintln(w)
}
