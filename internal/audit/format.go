package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// WriteJSON prints the report as indented JSON.
func (r *RBACReport) WriteJSON(w io.Writer) error { return writeJSON(w, r) }

// WriteJSON prints the report as indented JSON.
func (r *ClusterReport) WriteJSON(w io.Writer) error { return writeJSON(w, r) }

func writeWriter(w io.Writer, indent string, wr Writer) {
	mark := ""
	if wr.CI {
		mark = " [CI]"
	}
	fmt.Fprintf(w, "%s%s%s\n", indent, wr.Subject, mark)
	for _, g := range wr.Grants {
		fmt.Fprintf(w, "%s  %s %s (via %s)\n", indent, strings.Join(g.Verbs, "/"), strings.Join(g.Resources, ", "), g.Via)
	}
}

// WriteText prints who can write where, then the CI/CD findings.
func (r *RBACReport) WriteText(w io.Writer) error {
	fmt.Fprintln(w, "Cluster-wide writers (every namespace):")
	if len(r.ClusterWide) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, wr := range r.ClusterWide {
		writeWriter(w, "  ", wr)
	}
	for _, n := range r.Namespaces {
		fmt.Fprintf(w, "Namespace %s (plus the cluster-wide writers):\n", n.Namespace)
		for _, wr := range n.Writers {
			writeWriter(w, "  ", wr)
		}
	}
	if r.HiddenSystem > 0 {
		fmt.Fprintf(w, "(%d system subjects not shown; --include-system lists them)\n", r.HiddenSystem)
	}
	if len(r.CI) == 0 {
		_, err := fmt.Fprintln(w, "No CI/CD account holds more than it needs.")
		return err
	}
	fmt.Fprintf(w, "%d CI/CD account(s) hold more than they need:\n", len(r.CI))
	for _, f := range r.CI {
		fmt.Fprintf(w, "  %s\n", f.Subject)
		for _, p := range f.Problems {
			fmt.Fprintf(w, "    - %s\n", p)
		}
	}
	return nil
}

// WriteText prints one line per check with its status, method and detail.
func (r *ClusterReport) WriteText(w io.Writer) error {
	for _, c := range r.Checks {
		method := ""
		if c.Method != "" {
			method = " (" + c.Method + ")"
		}
		if _, err := fmt.Fprintf(w, "%-7s %s%s\n        %s\n", strings.ToUpper(string(c.Status)), c.ID, method, c.Detail); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
	}
	return nil
}
