package report

import (
	"io"
	"time"
)

// CosignVulnPredicateType is the in-toto predicate type of WriteCosignVuln's
// output.
const CosignVulnPredicateType = "https://cosign.sigstore.dev/attestation/vuln/v1"

// cosignVuln is cosign's vulnerability attestation predicate
// (sigstore/cosign pkg/cosign/attestation.CosignVulnPredicate).
type cosignVuln struct {
	Invocation cosignInvocation `json:"invocation"`
	Scanner    cosignScanner    `json:"scanner"`
	Metadata   cosignMetadata   `json:"metadata"`
}

type cosignInvocation struct {
	Parameters any    `json:"parameters"`
	URI        string `json:"uri"`
	EventID    string `json:"event_id"`
	BuilderID  string `json:"builder.id"`
}

type cosignScanner struct {
	URI     string   `json:"uri"`
	Version string   `json:"version"`
	DB      cosignDB `json:"db"`
	Result  any      `json:"result"`
}

type cosignDB struct {
	URI     string `json:"uri"`
	Version string `json:"version"`
}

type cosignMetadata struct {
	ScanStartedOn  time.Time `json:"scanStartedOn"`
	ScanFinishedOn time.Time `json:"scanFinishedOn"`
}

// WriteCosignVuln writes the predicate of a cosign vulnerability
// attestation; `cosign attest --type vuln --predicate FILE` signs it. The
// result is berth's JSON report.
func WriteCosignVuln(w io.Writer, r *Report) error {
	db := cosignDB{Version: r.DB.UpdatedAt.UTC().Format(time.RFC3339)}
	if len(r.DB.Sources) > 0 {
		db.URI = r.DB.Sources[len(r.DB.Sources)-1]
	}
	return encode(w, cosignVuln{
		Invocation: cosignInvocation{Parameters: r.Policy, URI: "", EventID: "", BuilderID: ""},
		Scanner: cosignScanner{
			URI:     "pkg:golang/github.com/berth-dev/berth@" + r.ToolVersion,
			Version: r.ToolVersion,
			DB:      db,
			Result:  r,
		},
		Metadata: cosignMetadata{ScanStartedOn: r.StartedAt.UTC(), ScanFinishedOn: r.FinishedAt.UTC()},
	})
}
