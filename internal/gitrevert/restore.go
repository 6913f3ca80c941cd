package gitrevert

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/berth-dev/berth/internal/release"
)

// ErrTargetMissing is returned when the target commit, or the path in it,
// cannot be found in the branch's history.
var ErrTargetMissing = errors.New("target content not found")

// ErrMovedOn is returned when the branch moved on during both the first push
// and the one retry.
var ErrMovedOn = errors.New("the branch moved on")

// localRef holds the restore commit for the push.
const localRef = plumbing.ReferenceName("refs/heads/berth-restore")

// testHookBeforePush, when set by a test, runs before every push attempt
// (0, then 1 on the retry), so a test can move the branch on in between.
var testHookBeforePush func(attempt int)

// Restore fetches req.Branch and, unless its tree at req.Path already equals
// the one at req.Commit, pushes one commit on top of it that makes it so.
// A push refused because the branch moved on is rebuilt on the new head and
// tried once more; a refusal of the credentials is an *AuthError.
func Restore(ctx context.Context, req Request) (*Result, error) {
	p, err := cleanPath(req.Path)
	if err != nil {
		return nil, err
	}
	if !plumbing.IsHash(req.Commit) {
		return nil, fmt.Errorf("target commit %q is not a full SHA", req.Commit)
	}
	req.Commit = strings.ToLower(req.Commit)
	branch := req.Branch
	if branch == "" {
		branch = "main"
	}
	u := publicURL(req.URL)
	res := &Result{URL: u, Branch: branch, Path: p, Target: req.Commit}
	am, user, err := req.Credentials.method(u)
	if err != nil {
		return nil, err
	}
	fail := func(verb string, err error) error {
		if isAuth(err) {
			return &AuthError{URL: u, User: user, Err: err}
		}
		return fmt.Errorf("%s branch %s of %s: %w", verb, branch, u, err)
	}

	remoteRef := plumbing.NewRemoteReferenceName("origin", branch)
	repo, err := git.CloneContext(ctx, memory.NewStorage(), nil, &git.CloneOptions{
		URL: u, Auth: am, ReferenceName: plumbing.NewBranchReferenceName(branch), SingleBranch: true, Tags: git.NoTags,
	})
	if err != nil {
		return nil, fail("fetching", err)
	}
	for attempt := 0; ; attempt++ {
		ref, err := repo.Reference(remoteRef, true)
		if err != nil {
			return nil, fail("reading", err)
		}
		res.Base = ref.Hash().String()
		commit, undone, err := build(repo, &req, p, ref.Hash())
		if err != nil {
			return nil, err
		}
		if commit.IsZero() {
			res.UpToDate = true
			return res, nil
		}
		res.Undone = undone
		if testHookBeforePush != nil {
			testHookBeforePush(attempt)
		}
		perr := push(ctx, repo, am, commit, branch)
		if perr == nil {
			res.Commit = commit.String()
			return res, nil
		}
		if isAuth(perr) {
			return nil, fail("pushing to", perr)
		}
		// Refused: if the branch moved on, rebuild on its new head once.
		err = repo.FetchContext(ctx, &git.FetchOptions{Auth: am, Tags: git.NoTags, Force: true,
			RefSpecs: []config.RefSpec{config.RefSpec("+refs/heads/" + branch + ":" + remoteRef.String())}})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil, fail("fetching", err)
		}
		if now, rerr := repo.Reference(remoteRef, true); rerr != nil || now.Hash().String() == res.Base {
			return nil, fail("pushing to", perr) // refused for another reason
		}
		if attempt > 0 {
			return nil, fmt.Errorf("branch %s of %s: %w twice, during the push and its retry", branch, u, ErrMovedOn)
		}
		res.Retried = true
	}
}

// build writes the restore commit on top of head and returns its hash, or
// the zero hash when head already holds the target content at p.
func build(repo *git.Repository, req *Request, p string, head plumbing.Hash) (plumbing.Hash, []string, error) {
	hc, err := repo.CommitObject(head)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("reading head %s: %w", release.ShortCommit(head.String()), err)
	}
	tc, err := repo.CommitObject(plumbing.NewHash(req.Commit))
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("%w: commit %s of release %d is not in the history of the branch", ErrTargetMissing, release.ShortCommit(req.Commit), req.Release)
	}
	want, err := pathTree(tc, p)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	if want.IsZero() {
		return plumbing.ZeroHash, nil, fmt.Errorf("%w: %s does not exist at commit %s of release %d", ErrTargetMissing, displayPath(p), release.ShortCommit(req.Commit), req.Release)
	}
	have, err := pathTree(hc, p)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	if have == want {
		return plumbing.ZeroHash, nil, nil
	}
	root, err := replaceTree(repo.Storer, hc.TreeHash, p, want)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	changes, err := undone(hc, tc.Hash, p)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	sig := signature(req)
	c := &object.Commit{
		Author: sig, Committer: sig, TreeHash: root, ParentHashes: []plumbing.Hash{head},
		Message: message(req, p, head, changes),
	}
	obj := repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("encoding commit: %w", err)
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("storing commit: %w", err)
	}
	return h, changes, nil
}

// push sends commit to branch without force: the server refuses it unless
// it is a fast-forward of the branch.
func push(ctx context.Context, repo *git.Repository, am transport.AuthMethod, commit plumbing.Hash, branch string) error {
	if err := repo.Storer.SetReference(plumbing.NewHashReference(localRef, commit)); err != nil {
		return fmt.Errorf("storing reference: %w", err)
	}
	return repo.PushContext(ctx, &git.PushOptions{
		RemoteName: "origin", Auth: am,
		RefSpecs: []config.RefSpec{config.RefSpec(localRef.String() + ":refs/heads/" + branch)},
	})
}

// signature is the commit's author and committer: the request's, else the
// user's global Git configuration, else "berth".
func signature(req *Request) object.Signature {
	name, email := req.AuthorName, req.AuthorEmail
	if name == "" || email == "" {
		if cfg, err := config.LoadConfig(config.GlobalScope); err == nil {
			if name == "" {
				name = cfg.User.Name
			}
			if email == "" {
				email = cfg.User.Email
			}
		}
	}
	if name == "" {
		name = "berth"
	}
	if email == "" {
		email = "berth@localhost"
	}
	return object.Signature{Name: name, Email: email, When: time.Now()}
}
