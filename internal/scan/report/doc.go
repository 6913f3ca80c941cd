// Package report decides whether a scan passes and renders its findings.
//
// Evaluate applies the gate: a severity threshold, --ignore-unfixed, and an
// ignore file whose entries each need a reason and an expiry date; expired
// entries stop applying and are reported. Renderers write the same Report as
// a table grouped by severity, JSON, SARIF 2.1.0, a CycloneDX 1.5 SBOM with
// vulnerabilities, or the cosign vulnerability attestation predicate
// (https://cosign.sigstore.dev/attestation/vuln/v1) for a later signing step.
package report
