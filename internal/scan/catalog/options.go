package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Version is the cataloger version. It is part of every layer-cache key:
// bump it whenever a cataloger's output for the same layer changes.
const Version = "catalog-v1"

// Options are the knobs of Scan. Start from DefaultOptions.
type Options struct {
	// Image and Digest are copied into the Inventory (the reference or path
	// scanned and its manifest digest, when the caller knows them).
	Image  string
	Digest string
	// CacheDir holds the layer cache; empty disables it. Scan writes nothing
	// anywhere else.
	CacheDir string
	// MaxLayerBytes bounds the decompressed bytes read from one layer; a
	// layer that inflates past it (a decompression bomb) fails the scan with
	// ErrLayerTooLarge.
	MaxLayerBytes int64
	// MaxLayerRatio bounds how many times its compressed size a layer may
	// inflate to (past a floor of 128 MiB), for the layers whose compressed
	// size is in CompressedSizes; past it the scan fails with
	// ErrLayerTooLarge. Zero or less turns the check off.
	MaxLayerRatio int64
	// CompressedSizes maps a layer's diff ID to its compressed size, where
	// the caller knows it without reading the layer (oci.Source.LayerSizes).
	CompressedSizes map[string]int64
	// StoredCompressed says that the image's layers are stored compressed
	// (oci.Source.StoresCompressed: registry and layout images), so Scan
	// reads them as stored and decompresses them itself, faster than
	// go-containerregistry (see oci.OpenLayer).
	StoredCompressed bool
	// MaxFileSize bounds a file a cataloger reads into memory (a package
	// database, a Go binary, a jar). Larger files are skipped with a warning.
	MaxFileSize int64
	// Secrets turns on the secret scan of text files.
	Secrets bool
	// MaxSecretFileSize bounds the files searched for secrets; larger ones
	// are skipped silently.
	MaxSecretFileSize int64
	// Parallel is how many layers are read at once; 0 or less means 2.
	Parallel int
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// DefaultOptions returns the options `berth scan` uses: 8 GiB per layer and
// at most 200 times its compressed size, 256 MiB per cataloged file, secrets
// on for files up to 1 MiB, no cache.
func DefaultOptions() Options {
	return Options{
		MaxLayerBytes:     8 << 30,
		MaxLayerRatio:     200,
		MaxFileSize:       256 << 20,
		Secrets:           true,
		MaxSecretFileSize: 1 << 20,
		Parallel:          2,
	}
}

// ratioFloor is the decompressed size every layer may reach whatever its
// compression ratio: small layers of zeros or text compress very well.
const ratioFloor = 128 << 20

// layerLimit is the most bytes the layer diffID may decompress to.
func (o Options) layerLimit(diffID string) int64 {
	limit := o.MaxLayerBytes
	if size, ok := o.CompressedSizes[diffID]; ok && size > 0 && o.MaxLayerRatio > 0 {
		// A layer so large that size*ratio passes the absolute limit is
		// bounded by that limit alone (and the product would overflow).
		if size <= (limit-1)/o.MaxLayerRatio {
			limit = min(limit, max(ratioFloor, size*o.MaxLayerRatio))
		}
	}
	return limit
}

// fill replaces zero limits with the defaults.
func (o Options) fill() Options {
	d := DefaultOptions()
	if o.MaxLayerBytes <= 0 {
		o.MaxLayerBytes = d.MaxLayerBytes
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = d.MaxFileSize
	}
	if o.MaxSecretFileSize <= 0 {
		o.MaxSecretFileSize = d.MaxSecretFileSize
	}
	if o.Parallel <= 0 {
		o.Parallel = d.Parallel
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// cacheVariant names the options that change a layer's results, so layers
// scanned with different limits or without secrets are cached apart.
func (o Options) cacheVariant() string {
	// The layer limits are left out: a layer over them is an error, never
	// a cached result.
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%t|%d", Version, o.MaxFileSize, o.Secrets, o.MaxSecretFileSize))
	return Version + "-" + hex.EncodeToString(sum[:6])
}
