package report

import (
	"fmt"
	"io"
	"time"

	"github.com/berth-dev/berth/internal/scan/catalog"
)

// Report is one scan's result, ready to render.
type Report struct {
	// Tool is "berth", ToolVersion its version.
	ToolVersion string            `json:"toolVersion"`
	Image       string            `json:"image"`
	Digest      string            `json:"digest,omitempty"`
	OS          *catalog.OS       `json:"os,omitempty"`
	Packages    []catalog.Package `json:"packages"`
	// Secrets are hard-coded secrets the catalogers found, redacted. They
	// are reported, not gated here: the policy engine decides about them.
	Secrets []catalog.Secret `json:"secrets,omitempty"`
	DB      DBInfo           `json:"database"`
	Policy  Policy           `json:"policy"`
	Verdict Verdict          `json:"verdict"`
	// Warnings are inputs that were skipped or could not be compared.
	Warnings   []string  `json:"warnings,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// DBInfo names the vulnerability data a scan used.
type DBInfo struct {
	Dir        string    `json:"dir"`
	UpdatedAt  time.Time `json:"updatedAt"`
	Advisories int       `json:"advisories"`
	Sources    []string  `json:"sources,omitempty"`
}

// Format is an output format.
type Format string

// Output formats.
const (
	FormatTable      Format = "table"
	FormatJSON       Format = "json"
	FormatSARIF      Format = "sarif"
	FormatCycloneDX  Format = "cyclonedx"
	FormatCosignVuln Format = "cosign-vuln"
)

// Formats lists the formats Write accepts.
var Formats = []Format{FormatTable, FormatJSON, FormatSARIF, FormatCycloneDX, FormatCosignVuln}

// Write renders r in format f.
func Write(w io.Writer, r *Report, f Format) error {
	switch f {
	case FormatTable:
		return WriteTable(w, r)
	case FormatJSON:
		return WriteJSON(w, r)
	case FormatSARIF:
		return WriteSARIF(w, r)
	case FormatCycloneDX:
		return WriteCycloneDX(w, r)
	case FormatCosignVuln:
		return WriteCosignVuln(w, r)
	}
	return fmt.Errorf("unknown output format %q (want table, json, sarif, cyclonedx or cosign-vuln)", f)
}
