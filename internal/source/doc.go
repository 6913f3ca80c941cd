// Package source turns a Git reference into a verified, content-addressed
// snapshot of one commit on local disk.
//
// A Fetcher first asks the remote which commit a branch or tag points to (a
// cheap ls-remote), then fetches that commit shallowly with go-git only if no
// snapshot of it exists yet, so every Application on the same repository and
// commit shares one fetch: a monorepo with 1000 Applications is fetched once
// per commit, not 1000 times. Concurrent requests for the same repository
// and reference are collapsed into one.
//
// Snapshots are written from the commit's tree, never through a work tree:
// symlinks that leave the repository, files above the size limit,
// repositories above the total limit and trees of more entries than
// MaxFiles (a "git bomb" is a few objects in the pack) are refused with an
// error naming the path or the limit, and a snapshot directory appears (atomically, by rename) only when
// complete.
package source
