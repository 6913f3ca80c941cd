package scan_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/scan"
)

// BenchmarkRunCold scans an OCI layout cold (no layer cache) against a
// database store, both named by the environment, so a profile can be taken
// of the exact images scripts/bench-scan.sh builds:
//
//	BERTH_BENCH_IMAGE=/tmp/berth-bench/images/large BERTH_BENCH_DB=/tmp/berth-bench/berth-db \
//	  go test -run '^$' -bench BenchmarkRunCold -benchtime 3x -cpuprofile cpu.out ./internal/scan/
func BenchmarkRunCold(b *testing.B) {
	image, db := os.Getenv("BERTH_BENCH_IMAGE"), os.Getenv("BERTH_BENCH_DB")
	if image == "" || db == "" {
		b.Skip("set BERTH_BENCH_IMAGE (an OCI layout) and BERTH_BENCH_DB (a store)")
	}
	opts := scan.DefaultOptions()
	opts.Image, opts.DBDir, opts.MaxDBAge = image, db, 0
	opts.Catalog.CacheDir = ""
	opts.Catalog.Secrets = os.Getenv("BERTH_BENCH_SECRETS") != ""
	opts.Now = time.Now
	for b.Loop() {
		if _, err := scan.Run(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}
