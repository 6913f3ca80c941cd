#!/usr/bin/env bash
# Runs berth's whole test suite against one shared Kubernetes sandbox.
#
# The sandbox components are compiled once (cached under $BERTH_CACHE_DIR or
# the user cache directory), one sandbox is started for all test packages
# and handed to them through $BERTH_TEST_SANDBOX, and it is stopped (by PID)
# when the tests end. Extra arguments go to `go test` (e.g. -run TestX).
set -euo pipefail
cd "$(dirname "$0")/.."

go build -o bin/berth ./cmd/berth
bin/berth sandbox build >/dev/null

state="$(mktemp -d "${TMPDIR:-/tmp}/berth-test-sandbox.XXXXXX")"
cleanup() {
	bin/berth sandbox down --state-dir "$state" >/dev/null 2>&1 || true
	rm -rf "$state"
}
trap cleanup EXIT
bin/berth sandbox up --state-dir "$state" >/dev/null

BERTH_TEST_SANDBOX="$state" go test -count=1 -timeout 60m "$@" ./...
