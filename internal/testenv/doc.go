// Package testenv is berth's integration-test harness. It gives a test binary
// real parts to talk to:
//
//   - a Kubernetes sandbox (see package sandbox), one per test binary, or the
//     running one named by $BERTH_TEST_SANDBOX so `make test` starts a single
//     sandbox for every package; Main wires it into TestMain and Env.Namespace
//     gives each test its own namespace, deleted when the test ends;
//   - a Git smart-HTTP server (`git http-backend` hosted with net/http/cgi),
//     optionally behind basic auth, with helpers to commit and push;
//   - an OCI registry (go-containerregistry's pkg/registry) over HTTP.
//
// A test that needs one of them and cannot get it fails with the reason; it
// never skips.
package testenv
