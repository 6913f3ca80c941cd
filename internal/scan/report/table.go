package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/internal/scan/match"
)

// WriteTable writes findings grouped by severity, highest first, with the
// versions that fix them, then ignored findings, expired ignore rules and
// the verdict.
func WriteTable(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	img := r.Image
	if r.Digest != "" {
		img += " (" + r.Digest + ")"
	}
	ew.printf("Image:    %s\n", clean(img))
	if r.OS != nil {
		ew.printf("OS:       %s %s\n", clean(r.OS.ID), clean(r.OS.VersionID))
	}
	ew.printf("Packages: %d\n", len(r.Packages))
	ew.printf("Database: %d advisories, imported %s\n", r.DB.Advisories, r.DB.UpdatedAt.UTC().Format(time.RFC3339))
	v := &r.Verdict
	bySev := map[match.Severity][]match.Finding{}
	for _, f := range v.Findings {
		bySev[f.Rating.Severity] = append(bySev[f.Rating.Severity], f)
	}
	for s := match.Critical; s >= match.Unknown; s-- {
		fs := bySev[s]
		if len(fs) == 0 {
			continue
		}
		ew.printf("\n%s (%d)\n", s, len(fs))
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tPACKAGE\tINSTALLED\tFIXED IN\tSCORE\tPATH\tSUMMARY")
		for _, f := range fs {
			fixed := strings.Join(f.Fixed, ", ")
			if fixed == "" {
				fixed = "-"
			}
			score := "-"
			if f.Rating.Score > 0 {
				score = fmt.Sprintf("%.1f", f.Rating.Score)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", clean(f.ID), clean(f.Package.Name), clean(f.Package.Version),
				clean(fixed), score, clean(f.Package.Path), oneLine(f.Summary, 60))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(v.Ignored) > 0 {
		ew.printf("\nIgnored (%d)\n", len(v.Ignored))
		for _, ig := range v.Ignored {
			ew.printf("  %s %s %s: %s (until %s)\n", clean(ig.Finding.ID), clean(ig.Finding.Package.Name), clean(ig.Finding.Package.Version), clean(ig.Rule.Reason), clean(ig.Rule.Expires))
		}
	}
	if v.Unfixed > 0 {
		ew.printf("\n%d findings without a fixed version hidden (--ignore-unfixed)\n", v.Unfixed)
	}
	if len(v.Expired) > 0 {
		ew.printf("\nExpired ignore entries (%d): they no longer apply\n", len(v.Expired))
		for _, e := range v.Expired {
			ew.printf("  %s expired %s (%s)\n", clean(e.ID), clean(e.Expires), clean(e.Reason))
		}
	}
	if len(r.Secrets) > 0 {
		ew.printf("\nSecrets (%d, redacted)\n", len(r.Secrets))
		for _, s := range r.Secrets {
			ew.printf("  %s %s:%d %s\n", clean(s.RuleID), clean(s.Path), s.Line, clean(s.Redacted))
		}
	}
	for _, wmsg := range r.Warnings {
		ew.printf("warning: %s\n", clean(wmsg))
	}
	threshold := r.Policy.FailOn.String()
	if r.Policy.FailOnUnknown {
		threshold += " (or UNKNOWN)"
	}
	if v.Pass() {
		ew.printf("\nPASS: %d findings, none at or above %s\n", len(v.Findings), threshold)
	} else {
		ew.printf("\nFAIL: %d of %d findings at or above %s\n", v.Failing, len(v.Findings), threshold)
	}
	return ew.err
}

func oneLine(s string, n int) string {
	s = clean(strings.Join(strings.Fields(s), " "))
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

// clean replaces control characters (terminal escapes from a hostile record
// or image, tabs that would break the table) with '?'.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
