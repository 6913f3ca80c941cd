package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/bench"
)

// NewCmdBench measures the agent on fresh sandboxes.
func NewCmdBench(s Streams) *cobra.Command {
	var sizes string
	var samples, rollbacks, requestCosts, concurrency int
	var baseline, requests bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the agent on the sandbox: N apps to Ready, peak RSS, push→applied and drift-heal latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ns []int
			for _, f := range strings.Split(sizes, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || n < 1 {
					return fmt.Errorf("--apps: %q is not a positive number", f)
				}
				ns = append(ns, n)
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			self, _ = filepath.EvalSymlinks(self)
			opts := bench.Options{Sizes: ns, Samples: samples, Binary: self, Out: s.Out, Baseline: baseline, Requests: requests, Concurrency: concurrency}
			if requestCosts > 0 && rollbacks > 0 {
				return fmt.Errorf("--request-costs and --rollbacks are separate measurements: pick one")
			}
			if requestCosts > 0 {
				costs, err := bench.RunRequestCosts(cmd.Context(), opts, requestCosts)
				if err != nil {
					return err
				}
				bench.PrintRequestCosts(s.Out, costs, requestCosts)
				return nil
			}
			if rollbacks > 0 {
				res, err := bench.RunRollback(cmd.Context(), opts, rollbacks)
				if err != nil {
					return err
				}
				bench.PrintRollback(s.Out, res)
				return nil
			}
			_, err = bench.Run(cmd.Context(), opts)
			return err
		},
	}
	cmd.Flags().StringVar(&sizes, "apps", "100,500,1000", "comma-separated numbers of Applications")
	cmd.Flags().BoolVar(&baseline, "baseline", true, "also time the cluster alone creating the same objects directly, on its own sandbox, and report the agent against it")
	cmd.Flags().BoolVar(&requests, "requests", false, "print the API server's requests per app by verb and resource, for the agent and the baseline")
	cmd.Flags().IntVar(&concurrency, "concurrency", bench.DefaultConcurrency, "the agent's --concurrency, and the baseline's number of workers")
	cmd.Flags().IntVar(&samples, "samples", 20, "samples for the latency figures")
	cmd.Flags().IntVar(&requestCosts, "request-costs", 0, "instead: send N requests of each kind an agent sync makes to a fresh sandbox and print the API server's CPU per request")
	cmd.Flags().IntVar(&rollbacks, "rollbacks", 0, "instead: measure N automatic rollbacks (failure signal → previous release Healthy) and the rehearsal's cost")
	return cmd
}
