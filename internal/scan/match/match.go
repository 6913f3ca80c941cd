package match

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/google/osv-scalibr/semantic"

	"github.com/berth-dev/berth/internal/scan/catalog"
	"github.com/berth-dev/berth/internal/vulndb"
)

// Finding is one advisory that affects one package.
type Finding struct {
	ID      string          `json:"id"`
	Aliases []string        `json:"aliases,omitempty"`
	Summary string          `json:"summary,omitempty"`
	URL     string          `json:"url,omitempty"`
	Package catalog.Package `json:"package"`
	// Fixed are the versions that fix it, lowest first; empty when no fix
	// is published.
	Fixed     []string `json:"fixed,omitempty"`
	Rating    Rating   `json:"rating"`
	Malicious bool     `json:"malicious,omitempty"`
}

// HasFix reports whether a fixed version is published.
func (f *Finding) HasFix() bool { return len(f.Fixed) > 0 }

// Result is what Match found.
type Result struct {
	Findings []Finding
	// Warnings name versions that could not be compared.
	Warnings []string
}

// Source is the store Match reads; *vulndb.DB implements it.
type Source interface {
	Lookup(ecosystem, name string) ([]vulndb.Advisory, error)
}

// Option is an optional knob of Match.
type Option func(*options)

type options struct {
	goos, goarch string
}

// WithPlatform names the image's operating system and architecture ("linux",
// "amd64"); Go advisories limited to other platforms (say, Windows-only
// path handling) are then left out, as govulncheck does. Without it every
// platform counts.
func WithPlatform(goos, goarch string) Option {
	return func(o *options) { o.goos, o.goarch = goos, goarch }
}

// Match returns the advisories that affect pkgs, sorted by severity (highest
// first), then ID, package and path.
func Match(ctx context.Context, db Source, pkgs []catalog.Package, opts ...Option) (*Result, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	res := &Result{}
	warned := map[string]bool{}
	for i := range pkgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := &pkgs[i]
		name, version := queryOf(p)
		if name == "" || version == "" || p.Ecosystem == "" {
			continue
		}
		advs, err := db.Lookup(p.Ecosystem, name)
		if err != nil {
			return nil, fmt.Errorf("looking up %s: %w", name, err)
		}
		var found []Finding
		for j := range advs {
			adv := &advs[j]
			f, ok, err := affects(adv, p.Ecosystem, version, &o)
			if err != nil {
				key := p.Ecosystem + "/" + name + "@" + version
				if !warned[key] {
					warned[key] = true
					res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s %s: %v", p.Ecosystem, name, version, err))
				}
				continue
			}
			if !ok {
				continue
			}
			f.Package = *p
			found = append(found, f)
		}
		res.Findings = append(res.Findings, mergeAliases(found)...)
	}
	Sort(res.Findings)
	return res, nil
}

// mergeAliases folds findings for one package that are the same
// vulnerability under different IDs (a PYSEC record and the GHSA record it
// names as an alias, say) into one: the better rated, or else the smaller
// ID, keeps the others' IDs as aliases and the union of fixed versions.
func mergeAliases(fs []Finding) []Finding {
	if len(fs) < 2 {
		return fs
	}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := &fs[i], &fs[j]
		if (a.Rating.Source != "") != (b.Rating.Source != "") {
			return a.Rating.Source != ""
		}
		if a.Rating.Severity != b.Rating.Severity {
			return a.Rating.Severity > b.Rating.Severity
		}
		return a.ID < b.ID
	})
	var out []Finding
	names := map[string]int{} // ID or alias → index in out
next:
	for _, f := range fs {
		for _, id := range append([]string{f.ID}, f.Aliases...) {
			k, ok := names[id]
			if !ok {
				continue
			}
			kept := &out[k]
			for _, a := range append([]string{f.ID}, f.Aliases...) {
				if a != kept.ID && !slices.Contains(kept.Aliases, a) {
					kept.Aliases = append(kept.Aliases, a)
				}
				names[a] = k
			}
			for _, v := range f.Fixed {
				if !slices.Contains(kept.Fixed, v) {
					kept.Fixed = append(kept.Fixed, v)
				}
			}
			kept.Fixed = sortVersions(kept.Package.Ecosystem, kept.Fixed)
			kept.Malicious = kept.Malicious || f.Malicious
			continue next
		}
		f.Aliases = slices.Clone(f.Aliases)
		out = append(out, f)
		for _, id := range append([]string{f.ID}, f.Aliases...) {
			names[id] = len(out) - 1
		}
	}
	return out
}

// Sort orders findings by severity (highest first), then ID, package, path.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := &fs[i], &fs[j]
		if a.Rating.Severity != b.Rating.Severity {
			return a.Rating.Severity > b.Rating.Severity
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		if a.Package.Name != b.Package.Name {
			return a.Package.Name < b.Package.Name
		}
		return a.Package.Path < b.Package.Path
	})
}

// queryOf is the name and version advisories use for p: the source package
// for distributions whose advisories name source packages, the Go standard
// library as "stdlib" with a plain version.
func queryOf(p *catalog.Package) (string, string) {
	name, version := p.Name, p.Version
	switch vulndb.BaseEcosystem(p.Ecosystem) {
	case "Debian", "Ubuntu", "Alpine":
		if p.SourceName != "" {
			name = p.SourceName
		}
		if p.SourceVersion != "" {
			version = p.SourceVersion
		}
	case "Go":
		if name == "stdlib" || name == "go" {
			name = "stdlib"
			version = strings.TrimPrefix(version, "go")
			// "1.22.1 X:boringcrypto" and similar experiments.
			version, _, _ = strings.Cut(version, " ")
		}
		if version == "(devel)" {
			return name, ""
		}
	}
	return name, version
}

// ecosystemApplies reports whether an affected entry's ecosystem covers the
// package's: same base, and the same release when both name one.
func ecosystemApplies(affected, pkg string) bool {
	ab, ar, aok := strings.Cut(affected, ":")
	pb, pr, pok := strings.Cut(pkg, ":")
	if ab != pb {
		return false
	}
	if !aok || !pok {
		return true
	}
	// "Ubuntu:22.04" and "Ubuntu:22.04:LTS" name the same release.
	return ar == pr || strings.HasPrefix(ar, pr+":") || strings.HasPrefix(pr, ar+":")
}

// platformApplies reports whether an advisory limited to platforms (empty:
// all) concerns target (empty: unknown, so it does).
func platformApplies(platforms []string, target string) bool {
	return len(platforms) == 0 || target == "" || slices.Contains(platforms, target)
}

// affects decides whether adv affects version of a package in ecosystem.
func affects(adv *vulndb.Advisory, ecosystem, version string, o *options) (Finding, bool, error) {
	var (
		hit   *vulndb.Affected
		fixed []string
	)
	for i := range adv.Affected {
		aff := &adv.Affected[i]
		if !ecosystemApplies(aff.Ecosystem, ecosystem) || !platformApplies(aff.GOOS, o.goos) || !platformApplies(aff.GOARCH, o.goarch) {
			continue
		}
		ok, fix, err := inAffected(aff, version)
		if err != nil {
			return Finding{}, false, err
		}
		if ok {
			if hit == nil {
				hit = aff
			}
			fixed = append(fixed, fix...)
		}
	}
	if hit == nil {
		return Finding{}, false, nil
	}
	f := Finding{
		ID:        adv.ID,
		Aliases:   adv.Aliases,
		Summary:   adv.Summary,
		URL:       adv.URL,
		Fixed:     sortVersions(ecosystem, dedupe(fixed)),
		Rating:    rate(adv, hit),
		Malicious: strings.HasPrefix(adv.ID, "MAL-"),
	}
	return f, true, nil
}

func inAffected(aff *vulndb.Affected, version string) (bool, []string, error) {
	for _, v := range aff.Versions {
		if v == version {
			return true, nil, nil
		}
	}
	if len(aff.Ranges) == 0 {
		return false, nil, nil
	}
	ver, err := semantic.Parse(version, aff.Ecosystem)
	if err != nil {
		if len(aff.Versions) > 0 {
			return false, nil, nil // listed versions were checked above
		}
		return false, nil, fmt.Errorf("comparing versions: %w", err)
	}
	var (
		affected bool
		fixes    []string
	)
	for _, r := range aff.Ranges {
		ok, fix, err := inRange(aff.Ecosystem, ver, r)
		if err != nil {
			return false, nil, err
		}
		if ok {
			affected = true
			if fix != "" {
				fixes = append(fixes, fix)
			}
		}
	}
	return affected, fixes, nil
}

// inRange evaluates one SEMVER or ECOSYSTEM range per the OSV schema: the
// events are put in version order and walked up to the package's version;
// introduced opens the range, fixed closes it at its version, last_affected
// closes it after its version, limit bounds it. It also returns the first
// fixed version above ver.
func inRange(ecosystem string, ver semantic.Version, r vulndb.Range) (bool, string, error) {
	type event struct {
		kind string
		v    semantic.Version // nil for introduced "0"
		raw  string
		rank int // order among events at the same version
	}
	evs := make([]event, 0, len(r.Events))
	for _, e := range r.Events {
		var x event
		switch {
		case e.Introduced != "":
			x = event{kind: "introduced", raw: e.Introduced, rank: 0}
		case e.LastAffected != "":
			x = event{kind: "last_affected", raw: e.LastAffected, rank: 1}
		case e.Fixed != "":
			x = event{kind: "fixed", raw: e.Fixed, rank: 2}
		case e.Limit != "":
			x = event{kind: "limit", raw: e.Limit, rank: 3}
		default:
			continue
		}
		if x.kind == "limit" && x.raw == "*" {
			continue // no limit
		}
		if x.kind != "introduced" || x.raw != "0" {
			v, err := semantic.Parse(x.raw, ecosystem)
			if err != nil {
				return false, "", fmt.Errorf("parsing range event %q: %w", x.raw, err)
			}
			x.v = v
		}
		evs = append(evs, x)
	}
	var sortErr error
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		switch {
		case a.v == nil && b.v == nil:
			return a.rank < b.rank
		case a.v == nil:
			return true
		case b.v == nil:
			return false
		}
		c, err := a.v.Compare(b.v)
		if err != nil {
			sortErr = err
			return false
		}
		if c != 0 {
			return c < 0
		}
		return a.rank < b.rank
	})
	if sortErr != nil {
		return false, "", fmt.Errorf("ordering range events: %w", sortErr)
	}
	affected := false
	fix := ""
	for _, e := range evs {
		c := 1 // ver compared with the event; introduced "0" is below everything
		if e.v != nil {
			var err error
			if c, err = ver.Compare(e.v); err != nil {
				return false, "", fmt.Errorf("comparing with %q: %w", e.raw, err)
			}
		}
		if c < 0 {
			if affected && e.kind == "fixed" {
				fix = e.raw
			}
			if affected && e.kind == "limit" {
				fix = ""
			}
			break
		}
		switch e.kind {
		case "introduced":
			affected = true
		case "fixed", "limit":
			affected = false
		case "last_affected":
			affected = affected && c == 0
		}
	}
	if !affected {
		return false, "", nil
	}
	return true, fix, nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// sortVersions orders versions by the ecosystem's rules, leaving them as
// they are when they do not parse.
func sortVersions(ecosystem string, vs []string) []string {
	parsed := make([]semantic.Version, len(vs))
	for i, v := range vs {
		p, err := semantic.Parse(v, ecosystem)
		if err != nil {
			return vs
		}
		parsed[i] = p
	}
	idx := make([]int, len(vs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool {
		c, err := parsed[idx[i]].Compare(parsed[idx[j]])
		return err == nil && c < 0
	})
	out := make([]string, len(vs))
	for i, k := range idx {
		out[i] = vs[k]
	}
	return out
}
