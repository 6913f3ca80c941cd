// Package gitrevert makes Git agree with the cluster again after a rollback.
//
// `berth rollback --revert-in-git` asks the agent to roll back (package apps)
// and then calls RestoreRelease: it reads the Application's source and the
// target Release's commit, and pushes one new commit to the Application's
// branch whose tree at the Application's path is exactly the tree at that
// commit. It is a "restore path to commit X" commit, not a revert of one
// commit, so any number of bad commits between X and the branch head are
// undone at once; files outside the path are left as the head has them.
//
// The agent is pull-only and its Git credentials are read-only by design, so
// they are never used here: the push is made with the user's own
// credentials (Credentials), from flags, environment or an SSH key.
//
// Everything happens in memory with go-git: the branch is fetched, the new
// tree objects are written next to it, and the commit is pushed without
// force. When the branch moved on meanwhile the push is refused; Restore then
// fetches again and rebuilds the commit on the new head once.
package gitrevert
