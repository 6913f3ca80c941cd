package policy

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// imageRef is an image reference split as written: repository (with
// registry and port), tag and digest, each possibly empty.
type imageRef struct {
	Repo, Tag, Digest string
}

// parseImage splits s without normalising it. A colon before the last
// slash belongs to a registry port ("registry:5000/app" has no tag).
func parseImage(s string) imageRef {
	var r imageRef
	if i := strings.Index(s, "@"); i >= 0 {
		r.Digest = s[i+1:]
		s = s[:i]
	}
	slash := strings.LastIndex(s, "/")
	if j := strings.LastIndex(s, ":"); j > slash {
		r.Tag = s[j+1:]
		s = s[:j]
	}
	r.Repo = s
	return r
}

// TagKey returns the canonical "registry/repository:tag" of image (docker.io
// and library/ made explicit, a missing tag read as latest), the key of the
// tag→digest maps in Resolution.Tags and in release records.
func TagKey(image string) (string, error) {
	r := parseImage(image)
	s := r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	t, err := name.NewTag(s)
	if err != nil {
		return "", fmt.Errorf("parsing image %q: %w", image, err)
	}
	return t.Context().Name() + ":" + t.TagStr(), nil
}
