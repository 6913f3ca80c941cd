package scan

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/internal/oci"
	"github.com/berth-dev/berth/internal/scan/catalog"
	"github.com/berth-dev/berth/internal/scan/match"
	"github.com/berth-dev/berth/internal/scan/report"
	"github.com/berth-dev/berth/internal/vulndb"
)

// DefaultMaxDBAge is how old the vulnerability data may be before a scan is
// refused.
const DefaultMaxDBAge = 7 * 24 * time.Hour

// Options are the knobs of Run. Start from DefaultOptions.
type Options struct {
	// Image is what to scan: a registry reference, an OCI layout directory
	// or a `docker save` tarball (see oci.Open).
	Image string
	// Registry holds credentials and transport settings for oci.Open.
	Registry oci.Options
	// DBDir is the vulnerability store (vulndb.DefaultDir when empty).
	DBDir string
	// MaxDBAge refuses data imported longer ago; 0 or less disables the check.
	MaxDBAge time.Duration
	// Policy is the gate.
	Policy report.Policy
	// Catalog are the cataloger options; CacheDir there enables the layer
	// cache that makes rescans fast.
	Catalog catalog.Options
	// ToolVersion is written into reports.
	ToolVersion string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// DefaultOptions are the options of `berth scan`: fail on HIGH (and on
// unrated findings), a 7-day database age limit and the layer cache under
// the user cache directory.
func DefaultOptions() Options {
	o := Options{
		MaxDBAge: DefaultMaxDBAge,
		Policy:   report.Policy{FailOn: match.High, FailOnUnknown: true},
		Catalog:  catalog.DefaultOptions(),
	}
	o.Catalog.CacheDir = DefaultCacheDir()
	return o
}

// DefaultCacheDir is $BERTH_SCAN_CACHE_DIR, or berth/layers under the user
// cache directory; empty (no cache) when neither can be found.
func DefaultCacheDir() string {
	if d := os.Getenv("BERTH_SCAN_CACHE_DIR"); d != "" {
		return d
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(c, "berth", "layers")
}

// Run scans one image and returns its report. An error means the scan could
// not be done (exit code 2 in the CLI); a report whose verdict fails is not
// an error.
func Run(ctx context.Context, opts Options) (*report.Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	started := now()
	dbDir := opts.DBDir
	if dbDir == "" {
		d, err := vulndb.DefaultDir()
		if err != nil {
			return nil, err
		}
		dbDir = d
	}
	// The database is checked before the image is fetched: a stale database
	// fails fast.
	db, err := vulndb.Open(dbDir)
	if err != nil {
		return nil, err
	}
	if err := db.CheckAge(started, opts.MaxDBAge); err != nil {
		return nil, err
	}
	img, src, err := oci.Open(ctx, opts.Image, opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", opts.Image, err)
	}
	copts := opts.Catalog
	copts.Image, copts.Digest = opts.Image, src.Digest
	copts.StoredCompressed = src.StoresCompressed()
	if copts.CompressedSizes == nil {
		// The ratio limit against decompression bombs needs them.
		copts.CompressedSizes = src.LayerSizes
	}
	if copts.Logger == nil {
		copts.Logger = opts.Logger
	}
	inv, err := catalog.Scan(ctx, img, copts)
	if err != nil {
		return nil, fmt.Errorf("cataloging %s: %w", opts.Image, err)
	}
	var mopts []match.Option
	if cf, err := img.ConfigFile(); err == nil && cf != nil && cf.OS != "" {
		mopts = append(mopts, match.WithPlatform(cf.OS, cf.Architecture))
	}
	return Evaluate(ctx, db, inv, opts, started, mopts...)
}

// Evaluate matches an inventory against db and applies the gate; Run calls
// it after cataloging (with the image's platform), and it serves callers
// that already hold an Inventory.
func Evaluate(ctx context.Context, db *vulndb.DB, inv *catalog.Inventory, opts Options, started time.Time, mopts ...match.Option) (*report.Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	m, err := match.Match(ctx, db, inv.Packages, mopts...)
	if err != nil {
		return nil, err
	}
	meta := db.Metadata()
	info := report.DBInfo{Dir: db.Dir(), UpdatedAt: meta.UpdatedAt, Advisories: meta.Advisories}
	for _, s := range meta.Sources {
		info.Sources = append(info.Sources, s.Path)
	}
	r := &report.Report{
		ToolVersion: opts.ToolVersion,
		Image:       inv.Image,
		Digest:      inv.Digest,
		OS:          inv.OS,
		Packages:    inv.Packages,
		Secrets:     inv.Secrets,
		DB:          info,
		Policy:      opts.Policy,
		Verdict:     report.Evaluate(m.Findings, opts.Policy, now()),
		Warnings:    append(append([]string{}, inv.Warnings...), m.Warnings...),
		StartedAt:   started,
	}
	if r.Packages == nil {
		r.Packages = []catalog.Package{}
	}
	r.FinishedAt = now()
	return r, nil
}
