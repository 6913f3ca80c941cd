package gitrevert

import (
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/berth-dev/berth/internal/release"
)

// maxWalk bounds the first-parent walk from the head back to the target.
const maxWalk = 1000

// maxListed bounds the undone commits named in the message.
const maxListed = 20

// undone lists, newest first, the commits on head's first-parent line after
// target that changed p, as "<short sha> <subject>". It returns nil when
// target is not on that line within maxWalk commits.
func undone(head *object.Commit, target plumbing.Hash, p string) ([]string, error) {
	var out []string
	c := head
	for range maxWalk {
		if c.Hash == target {
			return out, nil
		}
		if c.NumParents() == 0 {
			return nil, nil
		}
		parent, err := c.Parent(0)
		if err != nil {
			return nil, fmt.Errorf("reading the parent of %s: %w", release.ShortCommit(c.Hash.String()), err)
		}
		h, err := pathTree(c, p)
		if err != nil {
			return nil, err
		}
		ph, err := pathTree(parent, p)
		if err != nil {
			return nil, err
		}
		if h != ph {
			subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
			out = append(out, release.ShortCommit(c.Hash.String())+" "+subject)
		}
		c = parent
	}
	return nil, nil
}

// message is the restore commit's message: a subject, why, what it undoes
// and trailers that link it to the Application and its releases.
func message(req *Request, p string, head plumbing.Hash, undone []string) string {
	var b strings.Builder
	where := displayPath(p)
	fmt.Fprintf(&b, "berth: revert %s to %s (release %d)\n\n", where, release.ShortCommit(req.Commit), req.Release)
	fmt.Fprintf(&b, "Rolled back from %s: restores %s to exactly its content at\n", release.ShortCommit(head.String()), where)
	fmt.Fprintf(&b, "commit %s (release %d), so Git agrees with the cluster again.\n", release.ShortCommit(req.Commit), req.Release)
	b.WriteString("Nothing outside it changes.\n")
	if len(undone) > 0 {
		b.WriteString("\nUndoes:\n")
		for i, u := range undone {
			if i == maxListed {
				fmt.Fprintf(&b, "  ... and %d more\n", len(undone)-maxListed)
				break
			}
			b.WriteString("  " + u + "\n")
		}
	}
	b.WriteString("\n")
	if req.Application != "" {
		fmt.Fprintf(&b, "Berth-Application: %s\n", req.Application)
	}
	fmt.Fprintf(&b, "Berth-Release: %d\n", req.Release)
	if req.FromRelease > 0 {
		fmt.Fprintf(&b, "Berth-Rolled-Back-From-Release: %d\n", req.FromRelease)
	}
	fmt.Fprintf(&b, "Berth-Restored-Commit: %s\n", req.Commit)
	return b.String()
}
