package scancmd

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/cli/clio"
	"github.com/berth-dev/berth/internal/scan"
	"github.com/berth-dev/berth/internal/scan/match"
	"github.com/berth-dev/berth/internal/scan/report"
)

// ScanOptions are the flags of `berth scan`.
type ScanOptions struct {
	dbFlags
	FailOn        string
	FailOnUnknown bool
	IgnoreUnfixed bool
	IgnoreFile    string
	Output        string
	MaxDBAge      ageValue
	Insecure      bool
	Username      string
	Password      string
	Platform      string
	CacheDir      string
	NoCache       bool
	Secrets       bool
}

// NewCmdScan scans an image for vulnerable packages. Exit codes: 0 pass,
// 1 findings at or above the threshold, 2 the scan could not run.
func NewCmdScan(s clio.Streams) *cobra.Command {
	o := &ScanOptions{MaxDBAge: ageValue(scan.DefaultMaxDBAge)}
	cmd := &cobra.Command{
		Use:   "scan IMAGE",
		Short: "Scan an image for vulnerable packages (exit 0 pass, 1 findings at or above --fail-on, 2 error)",
		Long: `Scan a container image — a registry reference, an OCI layout directory or a docker save
tarball — for packages with known vulnerabilities, using the local OSV database
(see berth db). Exit codes: 0 pass, 1 findings at or above --fail-on, 2 the scan
could not run (no or stale database, unreadable image, bad flags).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, format, err := o.options(args[0])
			if err != nil {
				return err
			}
			r, err := scan.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if err := report.Write(s.Out, r, format); err != nil {
				return err
			}
			if !r.Verdict.Pass() {
				return &clio.ExitError{Code: 1}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	o.bind(fs)
	fs.StringVar(&o.FailOn, "fail-on", "HIGH", "lowest severity that fails the scan: LOW, MEDIUM, HIGH or CRITICAL")
	fs.BoolVar(&o.FailOnUnknown, "fail-on-unknown", true, "also fail on findings without any severity rating (the Go database rates none)")
	fs.BoolVar(&o.IgnoreUnfixed, "ignore-unfixed", false, "leave out findings that have no fixed version (malicious packages are always kept)")
	fs.StringVar(&o.IgnoreFile, "ignore-file", "", "YAML file of accepted findings, each with id, reason and expires")
	fs.StringVarP(&o.Output, "output", "o", "table", "output format: table, json, sarif, cyclonedx or cosign-vuln")
	fs.Var(&o.MaxDBAge, "max-db-age", "refuse a database imported longer ago, e.g. 7d, 36h; 0 disables the check")
	fs.BoolVar(&o.Insecure, "insecure", false, "allow plain-HTTP registries")
	fs.StringVar(&o.Username, "username", "", "registry user name (default: the Docker config's credentials)")
	fs.StringVar(&o.Password, "password", "", "registry password (default: $BERTH_REGISTRY_PASSWORD)")
	fs.StringVar(&o.Platform, "platform", "", "platform to pick from a multi-platform image, os/arch[/variant]")
	fs.StringVar(&o.CacheDir, "cache-dir", "", "layer cache directory (default: berth/layers under the user cache directory, or $BERTH_SCAN_CACHE_DIR)")
	fs.BoolVar(&o.NoCache, "no-cache", false, "read every layer, neither using nor filling the layer cache")
	fs.BoolVar(&o.Secrets, "secrets", true, "also look for hard-coded secrets (reported, redacted)")
	return cmd
}

// options turns the flags into scan.Options.
func (o *ScanOptions) options(image string) (scan.Options, report.Format, error) {
	opts := scan.DefaultOptions()
	opts.Image = image
	sev, err := match.ParseSeverity(o.FailOn)
	if err != nil || sev == match.Unknown {
		return opts, "", fmt.Errorf("--fail-on %q: want LOW, MEDIUM, HIGH or CRITICAL", o.FailOn)
	}
	format := report.Format(o.Output)
	if !strings.Contains(" table json sarif cyclonedx cosign-vuln ", " "+o.Output+" ") {
		return opts, "", fmt.Errorf("-o %q: want table, json, sarif, cyclonedx or cosign-vuln", o.Output)
	}
	opts.Policy = report.Policy{FailOn: sev, FailOnUnknown: o.FailOnUnknown, IgnoreUnfixed: o.IgnoreUnfixed}
	if o.IgnoreFile != "" {
		if opts.Policy.Ignores, err = report.LoadIgnoreFile(o.IgnoreFile); err != nil {
			return opts, "", err
		}
	}
	if opts.DBDir, err = o.dir(); err != nil {
		return opts, "", err
	}
	opts.MaxDBAge = time.Duration(o.MaxDBAge)
	opts.Registry.Insecure = o.Insecure
	opts.Registry.Username = o.Username
	opts.Registry.Password = o.Password
	if opts.Registry.Password == "" {
		opts.Registry.Password = os.Getenv("BERTH_REGISTRY_PASSWORD")
	}
	opts.Registry.Platform = o.Platform
	switch {
	case o.NoCache:
		opts.Catalog.CacheDir = ""
	case o.CacheDir != "":
		opts.Catalog.CacheDir = o.CacheDir
	}
	opts.Catalog.Secrets = o.Secrets
	opts.ToolVersion = clio.Version()
	return opts, format, nil
}

// ageValue is a duration flag that also takes days: "7d", "36h", "0".
type ageValue time.Duration

func (a *ageValue) String() string {
	d := time.Duration(*a)
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}

func (a *ageValue) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return fmt.Errorf("%q is not a number of days", s)
		}
		*a = ageValue(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 7d or 36h", s)
	}
	*a = ageValue(d)
	return nil
}

func (a *ageValue) Type() string { return "age" }
