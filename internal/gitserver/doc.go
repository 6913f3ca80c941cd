// Package gitserver serves bare Git repositories over smart HTTP by hosting
// `git http-backend` with net/http/cgi, optionally behind basic auth. `berth
// up` runs it to hold the example GitOps repository, and the test harness
// uses it as the real Git server tests talk to.
package gitserver
