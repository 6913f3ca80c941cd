package gitrevert

import (
	"fmt"
	"path"
	"strings"

	"github.com/berth-dev/berth/internal/release"
)

// Request says what to restore and where to push it.
type Request struct {
	// URL of the repository; user information in it is dropped, so the
	// Application's own credentials never reach the push.
	URL string
	// Branch to push to; default "main".
	Branch string
	// Path inside the repository to restore; empty or "." is the root.
	Path string
	// Commit (full SHA) whose content at Path is restored.
	Commit string
	// Credentials are the user's own.
	Credentials Credentials
	// Application ("namespace/name"), Release (the target) and FromRelease
	// (the release rolled away from, 0 when unknown) are recorded as commit
	// trailers.
	Application string
	Release     int64
	FromRelease int64
	// AuthorName and AuthorEmail sign the commit; default the user's global
	// Git configuration, then "berth".
	AuthorName, AuthorEmail string
}

// Result says what Restore did.
type Result struct {
	// URL (without credentials), Branch and Path that were restored.
	URL, Branch, Path string
	// Target is the commit whose content was restored.
	Target string
	// Base is the branch head the new commit was built on (or found equal).
	Base string
	// Commit is the pushed commit; empty when UpToDate.
	Commit string
	// UpToDate reports whether the branch already held the target content at
	// Path, so nothing was pushed.
	UpToDate bool
	// Retried reports whether the first push was refused because the branch
	// moved on and the commit was rebuilt on the new head.
	Retried bool
	// Undone lists the commits (short SHA and subject, newest first) between
	// Target and Base that changed Path.
	Undone []string
}

// Summary is a one-line account of the result for the user.
func (r *Result) Summary() string {
	if r.UpToDate {
		return fmt.Sprintf("Git already holds %s as of %s at %s (branch %s of %s): nothing pushed",
			displayPath(r.Path), release.ShortCommit(r.Target), release.ShortCommit(r.Base), r.Branch, r.URL)
	}
	s := fmt.Sprintf("pushed %s to branch %s of %s: %s restored to %s", release.ShortCommit(r.Commit), r.Branch, r.URL, displayPath(r.Path), release.ShortCommit(r.Target))
	if n := len(r.Undone); n > 0 {
		s += fmt.Sprintf(", undoing %d commit(s)", n)
	}
	if r.Retried {
		s += " (rebuilt once on a newer head)"
	}
	return s
}

// cleanPath normalises a repository path: "" for the root, otherwise a
// slash-separated relative path without "." or "..".
func cleanPath(p string) (string, error) {
	c := strings.TrimLeft(path.Clean(p), "/")
	switch {
	case c == "" || c == ".":
		return "", nil
	case c == ".." || strings.HasPrefix(c, "../"):
		return "", fmt.Errorf("path %q leaves the repository", p)
	}
	return c, nil
}

func displayPath(p string) string {
	if p == "" {
		return "the repository root"
	}
	return p
}
