#!/usr/bin/env bash
# bench-scan.sh: cold and warm `berth scan` and `berth-scan scan` (the
# scanner alone, without berth's Kubernetes code) time and peak memory on a small
# (~10 MB) and a large (~300 MB) image, side by side with govulncheck (binary
# mode) and, when it builds, osv-scanner, on the same OSV data
# (golang.org/x/vulndb). Prints a table and the differences in findings.
#
#   scripts/bench-scan.sh [WORKDIR]      (default: /tmp/berth-bench)
#
# To profile a cold scan of the images it builds, afterwards:
#   BERTH_BENCH_IMAGE=WORKDIR/images/large BERTH_BENCH_DB=WORKDIR/berth-db \
#     go test -run '^$' -bench BenchmarkRunCold -cpuprofile cpu.out ./internal/scan/
#
# ISAL=auto (default) builds berth with ISA-L's gzip inflater (-tags isal,
# as `make build` does) when libisal is installed, ISAL=1 insists on it,
# ISAL=0 builds pure Go (klauspost/compress); the inflater used is printed.
# The inflaters alone, on the large image's big layer:
#   BERTH_BENCH_GZIP=WORKDIR/images/large/blobs/sha256/DIGEST \
#     go test -tags isal -run '^$' -bench BenchmarkInflate ./internal/oci/
#
# Needs: go, GNU time (/usr/bin/time), jq, python3, network to the Go module
# proxy. Builds into bin/ and bin/bench/. Every go command that builds runs
# under flock /tmp/berth-go.lock, as the house rules ask.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-/tmp/berth-bench}"
VULNDB_MOD="golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018"
GOVULNCHECK_VERSION="v1.9.0"
OSV_SCANNER_VERSION="v2.6.0"
BENCH_BIN="$ROOT/bin/bench"
LOCK=/tmp/berth-go.lock
RUNS="${RUNS:-3}"
mkdir -p "$WORK" "$BENCH_BIN"
cd "$ROOT"

log() { echo "== $*" >&2; }

ISAL="${ISAL:-auto}"
TAGS=()
if [ "$ISAL" = 1 ] || { [ "$ISAL" = auto ] && { pkg-config --exists libisal 2>/dev/null || [ -f /usr/include/isa-l/igzip_lib.h ]; }; }; then
  TAGS=(-tags isal)
fi
log "building berth ${TAGS[*]}"
flock "$LOCK" go build "${TAGS[@]}" -o bin/berth ./cmd/berth
flock "$LOCK" go build "${TAGS[@]}" -o bin/berth-scan ./cmd/berth-scan
INFLATER="$(bin/berth version | sed -n 's/^scan: gzip inflater //p')"
log "gzip inflater: $INFLATER"
if [ "$ISAL" = 1 ] && [ "$INFLATER" != isa-l ]; then
  echo "ISAL=1, but berth was built without ISA-L (is cgo on?)" >&2
  exit 2
fi

if [ ! -x "$BENCH_BIN/govulncheck" ]; then
  log "building govulncheck $GOVULNCHECK_VERSION"
  GOBIN="$BENCH_BIN" flock "$LOCK" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
fi
if [ ! -x "$BENCH_BIN/indexdb" ]; then
  log "building indexdb (turns OSV files into govulncheck's database layout)"
  GOBIN="$BENCH_BIN" flock "$LOCK" go install "golang.org/x/vulndb/cmd/indexdb@${VULNDB_MOD#*@}"
fi
OSV_SCANNER=""
if [ -x "$BENCH_BIN/osv-scanner" ]; then
  OSV_SCANNER="$BENCH_BIN/osv-scanner"
elif [ ! -e "$BENCH_BIN/osv-scanner.failed" ]; then
  log "trying to build osv-scanner $OSV_SCANNER_VERSION (once)"
  if GOBIN="$BENCH_BIN" flock "$LOCK" go install "github.com/google/osv-scanner/v2/cmd/osv-scanner@$OSV_SCANNER_VERSION" 2>"$WORK/osv-scanner-build.log"; then
    OSV_SCANNER="$BENCH_BIN/osv-scanner"
  else
    touch "$BENCH_BIN/osv-scanner.failed"
    log "osv-scanner did not build: see $WORK/osv-scanner-build.log"
  fi
fi

log "fetching $VULNDB_MOD"
OSV_DIR="$(cd /tmp && go mod download -json "$VULNDB_MOD" | jq -r .Dir)/data/osv"
NREC=$(ls "$OSV_DIR" | wc -l)

log "importing $NREC records into berth's store"
DB="$WORK/berth-db"
rm -rf "$DB"
/usr/bin/time -f "%e %M" -o "$WORK/import.time" bin/berth db import "$OSV_DIR" --db "$DB" >/dev/null
log "writing the same records as an OSV all.zip (for osv-scanner; berth imports it too)"
OSVZIP_DIR="$WORK/osvdb/osv-scanner/Go"
rm -rf "$WORK/osvdb"; mkdir -p "$OSVZIP_DIR"
(cd "$OSV_DIR" && zip -q -r "$OSVZIP_DIR/all.zip" . -i '*.json')
rm -rf "$WORK/berth-db-zip"
/usr/bin/time -f "%e %M" -o "$WORK/import-zip.time" bin/berth db import "$OSVZIP_DIR/all.zip" --db "$WORK/berth-db-zip" >/dev/null
log "writing govulncheck's database"
GVDB="$WORK/govulndb"
rm -rf "$GVDB"
"$BENCH_BIN/indexdb" -vulns "$OSV_DIR" -out "$GVDB"

log "building the vulnerable Go program"
APP="$WORK/app"
mkdir -p "$APP"
cat >"$APP/go.mod" <<'MOD'
module example.test/benchapp

go 1.22

require (
	golang.org/x/crypto v0.0.0-20200622213623-75b288015ac9
	golang.org/x/text v0.3.5
)
MOD
cat >"$APP/main.go" <<'SRC'
package main

import (
	"fmt"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/text/language"
)

func main() {
	t, err := language.Parse(os.Args[len(os.Args)-1])
	fmt.Println(t, err, ssh.KeyAlgoED25519)
}
SRC
(cd "$APP" && GOFLAGS=-mod=mod GOWORK=off flock "$LOCK" go mod tidy && GOWORK=off CGO_ENABLED=0 flock "$LOCK" go build -o server .)

log "building the images"
GOROOT_DIR="$(go env GOROOT)"
EXTRA="$ROOT/bin/berth"
for b in "$ROOT"/bin/golangci-lint-* "$ROOT"/bin/controller-gen-*; do [ -x "$b" ] && EXTRA="$EXTRA,$b"; done
NPM_LIST="$WORK/npm-top.tsv"
NPM_TSV="$(ls /work/.library/env/packages/npm.tsv 2>/dev/null || true)"
if [ -n "$NPM_TSV" ]; then
  tail -n +2 "$NPM_TSV" | sort -t$'\t' -k3,3nr >"$NPM_LIST.all"
  head -3000 "$NPM_LIST.all" >"$NPM_LIST"
else
  : >"$NPM_LIST"
fi
flock "$LOCK" go run ./scripts/benchimage -out "$WORK/images" -app "$APP/server" -small-bin "$BENCH_BIN/govulncheck" -bin "$EXTRA" \
  -goroot "$GOROOT_DIR" -npm-list "$NPM_LIST"

# The Go binaries of each image, as files on this machine, for govulncheck.
small_bins=("$APP/server" "$BENCH_BIN/govulncheck")
large_bins=("$APP/server" "$BENCH_BIN/govulncheck" "$ROOT/bin/berth")
for b in "$ROOT"/bin/golangci-lint-* "$ROOT"/bin/controller-gen-*; do [ -x "$b" ] && large_bins+=("$b"); done
for b in "$GOROOT_DIR"/bin/* "$GOROOT_DIR"/pkg/tool/*/*; do [ -f "$b" ] && [ -x "$b" ] && large_bins+=("$b"); done

# measure NAME CMD...: best-of-RUNS wall seconds (to the millisecond, from
# bash's clock around GNU time, the same for every tool) and peak RSS (MB,
# from GNU time); the command's exit code 0 or 1 is fine (1 = findings).
measure() {
  local name=$1; shift
  local best="" mem=0 t0 t1 s kb
  for _ in $(seq "$RUNS"); do
    t0=$EPOCHREALTIME
    /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || [ $? -le 1 ]
    t1=$EPOCHREALTIME
    # GNU time prefixes "Command exited with non-zero status N" on exit 1.
    read -r _ kb < <(tail -n 1 "$WORK/t")
    s=$(python3 -c "print(round($t1 - $t0, 3))")
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $s < $best else 1)"; then best=$s; fi
    [ "$kb" -gt "$mem" ] && mem=$kb
  done
  echo "$best $((mem / 1024))"
}

# sum over binaries of one govulncheck run each (best of RUNS per binary).
govulncheck_all() {
  local scan=$1; shift
  local total=0 mem=0 i=0
  : >"$WORK/govulncheck-$scan.json"
  for b in "$@"; do
    read -r s m < <(measure "gv-$scan-$i" "$BENCH_BIN/govulncheck" -mode=binary -scan "$scan" -db "file://$GVDB" -format json "$b")
    total=$(python3 -c "print(round($total + $s, 3))")
    [ "$m" -gt "$mem" ] && mem=$m
    jq -c --arg bin "$b" 'select(.finding) | {bin: $bin, id: .finding.osv, module: .finding.trace[0].module}' "$WORK/gv-$scan-$i.out" >>"$WORK/govulncheck-$scan.json" || true
    i=$((i + 1))
  done
  echo "$total $mem"
}

echo "berth's gzip inflater: $INFLATER; load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$WORK/results.txt"
echo "image sizes: compressed/uncompressed MB" | tee -a "$WORK/results.txt"
printf '\n%-8s %-34s %9s %9s\n' image tool seconds peakMB | tee -a "$WORK/results.txt"
for img in small large; do
  layout="$WORK/images/$img"
  size=$(du -sm "$layout" | cut -f1)
  usize=$(($(python3 -c "
import tarfile
t=tarfile.open('$WORK/images/$img.tar')
n=0
for m in t.getmembers():
    if m.name.endswith('.tar.gz'):
        n+=sum(x.size for x in tarfile.open(fileobj=t.extractfile(m),mode='r:gz').getmembers())
print(n)") / 1048576))
  # cold: no layer cache and a fresh process (best of RUNS, like every
  # other figure); warm: the cache filled.
  read -r cs cm < <(measure "berth-$img-cold" bin/berth scan "$layout" --db "$DB" --no-cache --secrets=false -o json)
  cache="$WORK/cache-$img"; rm -rf "$cache"
  bin/berth scan "$layout" --db "$DB" --cache-dir "$cache" --secrets=false -o json >/dev/null || true
  read -r ws wm < <(measure "berth-$img-warm" bin/berth scan "$layout" --db "$DB" --cache-dir "$cache" --secrets=false -o json)
  read -r css csm < <(measure "berth-$img-cold-secrets" bin/berth scan "$layout" --db "$DB" --no-cache --secrets=true -o json)
  read -r ss sm < <(measure "berth-scan-$img-cold" bin/berth-scan scan "$layout" --db "$DB" --no-cache --secrets=false -o json)
  read -r sws swm < <(measure "berth-scan-$img-warm" bin/berth-scan scan "$layout" --db "$DB" --cache-dir "$cache" --secrets=false -o json)
  read -r sss ssm < <(measure "berth-scan-$img-cold-secrets" bin/berth-scan scan "$layout" --db "$DB" --no-cache --secrets=true -o json)
  if ! cmp -s <(jq -S 'del(.startedAt, .finishedAt)' "$WORK/berth-$img-cold.out") <(jq -S 'del(.startedAt, .finishedAt)' "$WORK/berth-scan-$img-cold.out"); then
    echo "berth scan and berth-scan scan disagree on $img: see $WORK/berth-$img-cold.out and $WORK/berth-scan-$img-cold.out" >&2
    exit 1
  fi
  eval "bins=(\"\${${img}_bins[@]}\")"
  read -r gms gmm < <(govulncheck_all module "${bins[@]}")
  cp "$WORK/govulncheck-module.json" "$WORK/govulncheck-module-$img.json"
  read -r gss gsm < <(govulncheck_all symbol "${bins[@]}")
  # govulncheck needs the binaries as files: what it costs to get them out of
  # the same image (gunzip + untar every layer of the layout), cold.
  ext="$WORK/extract-$img"; rm -rf "$ext"; mkdir -p "$ext"
  cat >"$WORK/extract.sh" <<SH
set -e
for blob in \$(jq -r '.layers[].digest' "$layout"/blobs/sha256/\$(jq -r '.manifests[0].digest' "$layout/index.json" | cut -d: -f2) | cut -d: -f2); do
  tar -xzf "$layout/blobs/sha256/\$blob" -C "$ext"
done
SH
  read -r xs xm < <(RUNS=1 measure "extract-$img" bash "$WORK/extract.sh")
  {
    printf '%-8s %-34s %9s %9s\n' "$img" "berth cold (${size}/${usize} MB, no secrets)" "$cs" "$cm"
    printf '%-8s %-34s %9s %9s\n' "$img" "berth cold with secrets" "$css" "$csm"
    printf '%-8s %-34s %9s %9s\n' "$img" "berth warm (layer cache)" "$ws" "$wm"
    printf '%-8s %-34s %9s %9s\n' "$img" "berth-scan cold (no secrets)" "$ss" "$sm"
    printf '%-8s %-34s %9s %9s\n' "$img" "berth-scan cold with secrets" "$sss" "$ssm"
    printf '%-8s %-34s %9s %9s\n' "$img" "berth-scan warm (layer cache)" "$sws" "$swm"
    printf '%-8s %-34s %9s %9s\n' "$img" "govulncheck -scan module (${#bins[@]} bin)" "$gms" "$gmm"
    printf '%-8s %-34s %9s %9s\n' "$img" "govulncheck -scan symbol" "$gss" "$gsm"
    printf '%-8s %-34s %9s %9s\n' "$img" "extract image layers (tar -xzf)" "$xs" "$xm"
    python3 -c "print('%-8s %-34s %9s' % ('$img', 'ratio govulncheck-module / berth cold', round($gms / $cs, 2)))"
    python3 -c "print('%-8s %-34s %9s' % ('$img', 'ratio govulncheck-symbol / berth cold', round($gss / $cs, 2)))"
    python3 -c "print('%-8s %-34s %9s' % ('$img', 'ratio govulncheck-module / berth-scan', round($gms / $ss, 2)))"
    python3 -c "print('%-8s %-34s %9s' % ('$img', 'ratio (extract+gv-module) / berth', round(($xs + $gms) / $cs, 2)))"
  } | tee -a "$WORK/results.txt"
  if [ -n "$OSV_SCANNER" ]; then
    read -r os om < <(OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY="$WORK/osvdb" RUNS=1 measure "osv-$img" "$OSV_SCANNER" scan image --archive "$WORK/images/$img.tar" --offline-vulnerabilities --format json)
    printf '%-8s %-34s %9s %9s\n' "$img" "osv-scanner" "$os" "$om" | tee -a "$WORK/results.txt"
  fi

  # Findings: berth's Go findings per binary vs govulncheck's module-level ones.
  python3 - "$WORK/berth-$img-cold.out" "$WORK/govulncheck-module-$img.json" "$img" <<'PY' | tee -a "$WORK/results.txt"
import json, sys, os
report = json.load(open(sys.argv[1]))
berth = set()
for f in report["verdict"]["findings"]:
    p = f["package"]
    if p["ecosystem"] == "Go":
        berth.add((os.path.basename(p["path"]).split("-", 1)[-1], f["id"], p["name"]))
gv = set()
for line in open(sys.argv[2]):
    d = json.loads(line)
    gv.add((os.path.basename(d["bin"]), d["id"], d["module"]))
# Image paths are usr/local/bin/N-NAME (or app/server); compare by file name.
only_b = sorted(berth - gv); only_g = sorted(gv - berth)
print(f"{sys.argv[3]:8} findings: berth {len(berth)} Go (id, module, binary), govulncheck {len(gv)}, common {len(berth & gv)}")
for x in only_b[:15]: print(f"{'':8}   only berth:       {x}")
for x in only_g[:15]: print(f"{'':8}   only govulncheck: {x}")
PY
done
read -r is im <"$WORK/import.time"
echo "db import of $NREC records (directory): ${is}s, ${im} KB peak" | tee -a "$WORK/results.txt"
read -r is im <"$WORK/import-zip.time"
echo "db import of the same records as all.zip: ${is}s, ${im} KB peak" | tee -a "$WORK/results.txt"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/results.txt"
