package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Kind says where an image was read from.
type Kind string

// The kinds of image source Open understands.
const (
	KindRegistry  Kind = "registry"
	KindLayout    Kind = "oci-layout"
	KindTarball   Kind = "docker-archive"
	refAnnotation      = "org.opencontainers.image.ref.name"
)

// ErrAmbiguous is returned when a layout or tarball holds several images and
// the reference does not pick one.
var ErrAmbiguous = errors.New("several images, none selected")

// Options are the knobs of Open. The zero value reads public registries over
// HTTPS with the Docker config's credentials, for the current platform.
type Options struct {
	// Username and Password, when Username is set, authenticate to the
	// registry instead of the Docker config.
	Username string
	Password string
	// Insecure allows plain-HTTP (and unverified TLS) registries.
	Insecure bool
	// Platform picks an image from a multi-platform index, "os/arch[/variant]";
	// empty means the platform berth runs on.
	Platform string
	// Keychain overrides authn.DefaultKeychain.
	Keychain authn.Keychain
}

// Source describes what Open opened.
type Source struct {
	// Kind is where the image came from.
	Kind Kind `json:"kind"`
	// Ref is the reference or path as given.
	Ref string `json:"ref"`
	// Digest is the image manifest digest when it is known without
	// recompressing layers (registry and layout; empty for tarballs whose
	// layers are stored uncompressed).
	Digest string `json:"digest,omitempty"`
	// LayerSizes maps each layer's diff ID to its compressed size, where the
	// stored manifest gives it (registry and layout), so a scanner can spot
	// a layer that inflates far past its size; nil for tarballs.
	LayerSizes map[string]int64 `json:"-"`
}

// layerSizes reads the compressed layer sizes from img's stored manifest.
func layerSizes(img v1.Image) map[string]int64 {
	m, err := img.Manifest()
	if err != nil {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil || len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil
	}
	sizes := make(map[string]int64, len(m.Layers))
	for i, l := range m.Layers {
		if l.Size > 0 && l.MediaType.IsLayer() {
			sizes[cf.RootFS.DiffIDs[i].String()] = l.Size
		}
	}
	return sizes
}

// Open opens ref, which is one of:
//
//   - a path to an OCI image layout directory, optionally followed by
//     ":NAME" to pick the image whose org.opencontainers.image.ref.name
//     annotation is NAME (needed when the layout holds several images);
//   - a path to a `docker save` (or go-containerregistry tarball) file,
//     optionally followed by ":REPO:TAG" to pick one of several images;
//   - otherwise a registry reference such as "registry.example/app:1.2".
//
// Paths win over registry references when they exist on disk; a reference
// may be forced with the "docker://" prefix and a path with "oci:" or
// "docker-archive:". Layers are not read here.
func Open(ctx context.Context, ref string, opts Options) (v1.Image, Source, error) {
	switch {
	case strings.HasPrefix(ref, "docker://"):
		return openRemote(ctx, strings.TrimPrefix(ref, "docker://"), opts)
	case strings.HasPrefix(ref, "oci:"):
		p, sel := splitPath(strings.TrimPrefix(ref, "oci:"))
		return openLayout(p, sel, opts)
	case strings.HasPrefix(ref, "docker-archive:"):
		p, sel := splitPath(strings.TrimPrefix(ref, "docker-archive:"))
		return openTarball(p, sel)
	}
	if p, sel := splitPath(ref); p != "" {
		if fi, err := os.Stat(p); err == nil {
			if fi.IsDir() {
				return openLayout(p, sel, opts)
			}
			return openTarball(p, sel)
		}
	}
	return openRemote(ctx, ref, opts)
}

// splitPath splits "PATH[:SELECTOR]" where PATH exists on disk. It returns
// an empty path when no prefix of ref exists.
func splitPath(ref string) (string, string) {
	if _, err := os.Stat(ref); err == nil {
		return ref, ""
	}
	for i := strings.Index(ref, ":"); i >= 0; {
		if _, err := os.Stat(ref[:i]); err == nil && i > 0 {
			return ref[:i], ref[i+1:]
		}
		j := strings.Index(ref[i+1:], ":")
		if j < 0 {
			break
		}
		i += j + 1
	}
	return "", ""
}

func (o Options) platform() (v1.Platform, error) {
	if o.Platform == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	p, err := v1.ParsePlatform(o.Platform)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("parsing platform %q: %w", o.Platform, err)
	}
	return *p, nil
}

func openRemote(ctx context.Context, ref string, opts Options) (v1.Image, Source, error) {
	var nameOpts []name.Option
	if opts.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return nil, Source{}, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	plat, err := opts.platform()
	if err != nil {
		return nil, Source{}, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(plat)}
	switch {
	case opts.Username != "":
		ropts = append(ropts, remote.WithAuth(&authn.Basic{Username: opts.Username, Password: opts.Password}))
	case opts.Keychain != nil:
		ropts = append(ropts, remote.WithAuthFromKeychain(opts.Keychain))
	default:
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	img, err := remote.Image(r, ropts...)
	if err != nil {
		return nil, Source{}, fmt.Errorf("fetching image %s: %w", r, err)
	}
	src := Source{Kind: KindRegistry, Ref: ref, LayerSizes: layerSizes(img)}
	if d, err := img.Digest(); err == nil {
		src.Digest = d.String()
	}
	return img, src, nil
}

func openLayout(dir, sel string, opts Options) (v1.Image, Source, error) {
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return nil, Source{}, fmt.Errorf("opening %s: not an OCI image layout (no oci-layout file)", dir)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, Source{}, fmt.Errorf("opening OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, Source{}, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	plat, err := opts.platform()
	if err != nil {
		return nil, Source{}, err
	}
	img, digest, err := pickFromIndex(idx, sel, plat, 0)
	if err != nil {
		return nil, Source{}, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	return img, Source{Kind: KindLayout, Ref: dir, Digest: digest, LayerSizes: layerSizes(img)}, nil
}

// pickFromIndex chooses the image in idx named sel (by ref annotation), or
// the only one, descending into nested indexes by platform.
func pickFromIndex(idx v1.ImageIndex, sel string, plat v1.Platform, depth int) (v1.Image, string, error) {
	if depth > 4 {
		return nil, "", errors.New("image indexes nested too deep")
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, "", fmt.Errorf("reading index: %w", err)
	}
	var cands []v1.Descriptor
	for _, d := range m.Manifests {
		if sel != "" && d.Annotations[refAnnotation] != sel {
			continue
		}
		cands = append(cands, d)
	}
	if len(cands) == 0 {
		if sel != "" {
			return nil, "", fmt.Errorf("no image named %q", sel)
		}
		return nil, "", errors.New("no image")
	}
	if len(cands) > 1 {
		// Several platforms of one image: pick ours.
		var match []v1.Descriptor
		for _, d := range cands {
			if d.Platform != nil && d.Platform.Satisfies(plat) {
				match = append(match, d)
			}
		}
		if len(match) != 1 {
			var names []string
			for _, d := range cands {
				if n := d.Annotations[refAnnotation]; n != "" {
					names = append(names, n)
				}
			}
			return nil, "", fmt.Errorf("%w (%d images; name one with PATH:NAME: %s)", ErrAmbiguous, len(cands), strings.Join(names, ", "))
		}
		cands = match
	}
	d := cands[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, "", fmt.Errorf("reading index %s: %w", d.Digest, err)
		}
		return pickFromIndex(child, "", plat, depth+1)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("reading image %s: %w", d.Digest, err)
	}
	return img, d.Digest.String(), nil
}

func openTarball(path, sel string) (v1.Image, Source, error) {
	var tag *name.Tag
	if sel != "" {
		t, err := name.NewTag(sel)
		if err != nil {
			return nil, Source{}, fmt.Errorf("parsing tag %q: %w", sel, err)
		}
		tag = &t
	} else {
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
		if err != nil {
			return nil, Source{}, fmt.Errorf("reading image tarball %s: %w", path, err)
		}
		if len(m) > 1 {
			var tags []string
			for _, d := range m {
				tags = append(tags, d.RepoTags...)
			}
			return nil, Source{}, fmt.Errorf("reading image tarball %s: %w (%d images; name one with PATH:REPO:TAG: %s)", path, ErrAmbiguous, len(m), strings.Join(tags, ", "))
		}
	}
	img, err := tarball.ImageFromPath(path, tag)
	if err != nil {
		return nil, Source{}, fmt.Errorf("reading image tarball %s: %w", path, err)
	}
	// The manifest digest of a tarball image with uncompressed layers needs
	// every layer compressed: leave it out.
	return img, Source{Kind: KindTarball, Ref: path}, nil
}
