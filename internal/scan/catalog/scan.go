package catalog

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/internal/scan/cache"
	"github.com/berth-dev/berth/internal/secretscan"
)

// Scan inventories img. It reads every layer once, as a stream, bottom
// first (up to Options.Parallel layers at a time), runs the catalogers on
// the files they want and lays the layers' results over one another,
// honouring whiteouts, so only what the final filesystem holds is reported,
// each item tied to the layer that added it.
//
// With Options.CacheDir set, each layer's results are cached under its diff
// ID and the cataloger version; a layer found in the cache is not read.
//
// Hostile input never crashes Scan: entries with absolute or ".." paths,
// files over the size limit and symlink loops become warnings in the
// Inventory; a truncated or malformed layer is an error, and so is a layer
// that decompresses past Options.MaxLayerBytes (ErrLayerTooLarge).
func Scan(ctx context.Context, img v1.Image, opts Options) (*Inventory, error) {
	opts = opts.fill()
	if opts.Secrets {
		// Compiling the gitleaks rules takes a while: do it while the
		// first layers are read.
		go func() { _ = secretscan.Init() }()
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	diffIDs, err := layerDiffIDs(img, layers)
	if err != nil {
		return nil, err
	}
	var c *cache.Cache
	if opts.CacheDir != "" {
		if c, err = cache.New(opts.CacheDir); err != nil {
			return nil, err
		}
	}
	variant := opts.cacheVariant()
	recs := make([]*layerRecord, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	for i := range layers {
		g.Go(func() error {
			id := diffIDs[i]
			key, err := cache.Key(id, variant)
			if err != nil {
				return fmt.Errorf("layer %s: %w", id, err)
			}
			if c != nil {
				var r layerRecord
				ok, err := c.Get(key, &r)
				if err != nil {
					return err
				}
				if ok && r.DiffID == id {
					opts.Logger.Debug("layer cache hit", "layer", id)
					recs[i] = &r
					return nil
				}
			}
			r, err := readLayer(gctx, layers[i], id, opts)
			if err != nil {
				return err
			}
			if c != nil {
				if err := c.Put(key, r); err != nil {
					// A scan without a cache entry is still a correct scan.
					opts.Logger.Warn("writing layer cache", "layer", id, "err", err)
				}
			}
			recs[i] = r
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return merge(recs, opts), nil
}

// layerDiffIDs takes the diff IDs from the config file, which needs no layer
// read, falling back to asking each layer.
func layerDiffIDs(img v1.Image, layers []v1.Layer) ([]string, error) {
	out := make([]string, len(layers))
	if cf, err := img.ConfigFile(); err == nil && cf != nil && len(cf.RootFS.DiffIDs) == len(layers) {
		for i, h := range cf.RootFS.DiffIDs {
			out[i] = h.String()
		}
		return out, nil
	}
	for i, l := range layers {
		h, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("reading diff ID of layer %d: %w", i, err)
		}
		out[i] = h.String()
	}
	return out, nil
}
