package vulndb

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// PrintStatus writes a human summary of a store's metadata.
func PrintStatus(w io.Writer, dir string, m Metadata, now time.Time) {
	fmt.Fprintf(w, "database:   %s\n", dir)
	fmt.Fprintf(w, "updated:    %s (%s ago)\n", m.UpdatedAt.UTC().Format(time.RFC3339), now.Sub(m.UpdatedAt).Round(time.Minute))
	if !m.Newest.IsZero() {
		fmt.Fprintf(w, "newest:     %s (latest advisory modification)\n", m.Newest.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "advisories: %d\n", m.Advisories)
	bases := make([]string, 0, len(m.Ecosystems))
	for b := range m.Ecosystems {
		bases = append(bases, b)
	}
	sort.Strings(bases)
	fmt.Fprintln(w, "ecosystems:")
	for _, b := range bases {
		e := m.Ecosystems[b]
		fmt.Fprintf(w, "  %-12s %6d advisories  %6d packages\n", b, e.Advisories, e.Packages)
	}
	fmt.Fprintln(w, "sources:")
	for _, s := range m.Sources {
		fmt.Fprintf(w, "  %s  %s  (%d records, %d skipped)\n", s.ImportedAt.UTC().Format(time.RFC3339), s.Path, s.Records, s.Skipped)
	}
}
