package policy

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berth-dev/berth/internal/manifest"
)

// Image rule IDs.
const (
	RuleImageLatestTag        = "image-latest-tag"
	RuleImageUntagged         = "image-untagged"
	RuleImageDigestRequired   = "image-digest-required"
	RuleImageTagMoved         = "image-tag-moved"
	RuleImageInvalidReference = "image-invalid-reference"
)

func init() {
	register(
		&Rule{
			ID: RuleImageLatestTag, Family: "images", Severity: SeverityHigh, DefaultMode: ModeEnforce,
			Summary: "an image uses the mutable tag :latest (without a digest)",
			Fix:     "use a release tag (app:1.4.2) or pin a digest (app:1.4.2@sha256:...)",
			check: imageCheck(func(r imageRef) string {
				if r.Tag == "latest" && r.Digest == "" {
					return "uses the mutable tag :latest"
				}
				return ""
			}),
		},
		&Rule{
			ID: RuleImageUntagged, Family: "images", Severity: SeverityHigh, DefaultMode: ModeEnforce,
			Summary: "an image has neither tag nor digest (the runtime pulls :latest)",
			Fix:     "add a release tag or a digest to the image reference",
			check: imageCheck(func(r imageRef) string {
				if r.Repo != "" && r.Tag == "" && r.Digest == "" {
					return "has neither tag nor digest, so :latest is pulled"
				}
				return ""
			}),
		},
		&Rule{
			ID: RuleImageDigestRequired, Family: "images", Severity: SeverityMedium, DefaultMode: ModeWarn,
			Summary: "an image reference carries no digest (in the agent: the tag could not be resolved to one)",
			Fix:     "pin the digest (app:1.4.2@sha256:...) or let the agent resolve tags; set mode enforce to require digests",
			check: func(ec *evalContext, obj *manifest.Object, pod *podTemplate) []finding {
				if pod == nil {
					return nil
				}
				var out []finding
				for _, c := range containers(pod.Spec) {
					byTag := ec.opt.byTag[obj]
					if c.Image == "" || parseImage(c.Image).Digest != "" || (!byTag && ec.opt.resolution.pinned(c.Image)) {
						continue
					}
					msg := fmt.Sprintf("%s image %q has no digest", c.label(), c.Image)
					if byTag {
						msg += " (a Helm hook: Helm creates it from the chart, by tag)"
					}
					out = append(out, finding{obj: obj, field: c.field(pod.Path, "image"), message: msg})
				}
				return out
			},
		},
		&Rule{
			ID: RuleImageTagMoved, Family: "images", Severity: SeverityCritical, DefaultMode: ModeEnforce,
			Summary: "a tag now points to a different digest than in an earlier release",
			Fix:     "publish a new tag for new content (tags must be immutable), or pin the digest you mean to deploy",
			check: func(ec *evalContext, obj *manifest.Object, pod *podTemplate) []finding {
				res := ec.opt.resolution
				if pod == nil || res == nil || len(res.Moved) == 0 {
					return nil
				}
				var out []finding
				for _, c := range containers(pod.Spec) {
					if parseImage(c.Image).Digest != "" {
						continue
					}
					key, err := TagKey(c.Image)
					if err != nil {
						continue
					}
					for _, m := range res.Moved {
						if m.Tag == key {
							out = append(out, finding{obj: obj, field: c.field(pod.Path, "image"), message: fmt.Sprintf("%s image %q: tag moved from %s to %s", c.label(), c.Image, m.Previous, m.Current)})
						}
					}
				}
				return out
			},
		},
		&Rule{
			ID: RuleImageInvalidReference, Family: "images", Severity: SeverityHigh, DefaultMode: ModeEnforce,
			Summary: "an image reference is empty or not a valid reference",
			Fix:     "write the image as [registry[:port]/]repository[:tag][@sha256:digest]",
			check: imageCheck(func(r imageRef) string {
				if r.Repo == "" {
					return "is empty"
				}
				s := r.Repo
				if r.Tag != "" {
					s += ":" + r.Tag
				}
				if r.Digest != "" {
					s += "@" + r.Digest
				}
				if _, err := name.ParseReference(s); err != nil {
					return "is not a valid image reference"
				}
				return ""
			}),
		},
	)
}

// imageCheck builds a per-container check from a test on the parsed
// reference that returns a message suffix, or "" when the image is fine.
func imageCheck(test func(imageRef) string) func(*evalContext, *manifest.Object, *podTemplate) []finding {
	return func(_ *evalContext, obj *manifest.Object, pod *podTemplate) []finding {
		if pod == nil {
			return nil
		}
		var out []finding
		for _, c := range containers(pod.Spec) {
			if msg := test(parseImage(c.Image)); msg != "" {
				out = append(out, finding{obj: obj, field: c.field(pod.Path, "image"), message: fmt.Sprintf("%s image %q %s", c.label(), c.Image, msg)})
			}
		}
		return out
	}
}
