#!/usr/bin/env bash
# bench/memory.sh: peak memory of scoring and of SSMax-only fine-tuning of a
# TinyLlama-1.1B-shaped bf16 checkpoint, as ratios to its size on disk.
#
#   bench/memory.sh                  # ~2.2 GB checkpoint, a few minutes
#   LAYERS=4 bench/memory.sh         # a smaller model of the same width
#   KEEP=1 WORK=/tmp/mem bench/memory.sh   # keep (and reuse) the checkpoints
#
# It builds ssmax and bench/gencheckpoint, writes the synthetic checkpoint
# (22 layers, hidden 2048, intermediate 5632, 32 heads, 4 KV heads, vocab
# 32000, bf16) and its SSMax conversion (`ssmax convert`), then runs, each
# under /usr/bin/time -v:
#
#   score     ssmax score --model SRC --tokens (256 random ids)
#   ssmax     ssmax finetune --model CONV --train ssmax --seq-len 128 --batch-size 1 --steps 2
#   ssmax b8  the same with --batch-size 8
#   ckpt b8   the same with --batch-size 8 --activation-checkpointing
#
# and prints each peak RSS ("Maximum resident set size"), its ratio to the
# bytes of the checkpoint's safetensors files, and whether it is below the
# goal of 1.25 x disk + 512 MB; with the wall and CPU seconds (user + system:
# the time to compare on a loaded machine) and the load average at the start
# of each run.
# Environment: LAYERS (default 22), STEPS (default 2), ROWS (regexp over the
# row names, default all), WORK (default a new temporary directory), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

LAYERS=${LAYERS:-22}
STEPS=${STEPS:-2}
ROWS=${ROWS:-.}
KEEP=${KEEP:-0}
WORK=${WORK:-$(mktemp -d /tmp/ssmax-bench-memory.XXXXXX)}
mkdir -p "$WORK"
[ -x /usr/bin/time ] || { echo "bench/memory.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

go build -o "$WORK/ssmax" .
go build -o "$WORK/gencheckpoint" ./bench/gencheckpoint
src="$WORK/src" conv="$WORK/conv"
if [ ! -s "$src/config.json" ]; then
	"$WORK/gencheckpoint" -out "$src" -layers "$LAYERS" -dtype bf16 >/dev/null
fi
if [ ! -s "$conv/config.json" ]; then
	"$WORK/ssmax" convert "$src" "$conv" -q >/dev/null
fi
disk=$(cat "$src"/*.safetensors | wc -c)
corpus="$WORK/corpus.txt"
if [ ! -s "$corpus" ]; then
	(set +o pipefail; find "$(go env GOROOT)/src" -name '*.go' | LC_ALL=C sort | xargs cat 2>/dev/null | head -c 2000000 >"$corpus")
fi
awk 'BEGIN { srand(1); for (i = 0; i < 256; i++) printf "%d ", int(rand() * 32000); print "" }' >"$WORK/tokens.txt"

rss() { awk '/Maximum resident set size/ {print $6 * 1024}' "$1"; }
wall() { awk '/Elapsed \(wall clock\)/ {n = split($NF, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$1"; }
cpu() { awk -F: '/User time/ {u = $2} /System time/ {s = $2} END {print u + s}' "$1"; }

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GB; $(date -u +%Y-%m-%dT%H:%MZ)"
printf 'checkpoint: %d layers, bf16, %.0f MB on disk; goal: peak RSS < 1.25 x disk + 512 MB = %.0f MB\n' \
	"$LAYERS" "$(echo "$disk" | awk '{print $1 / 1e6}')" "$(echo "$disk" | awk '{print (1.25 * $1 + 512 * 2^20) / 1e6}')"
printf '%-9s %10s %9s %8s %8s %6s %8s  %s\n' run "peak MB" "x disk" seconds "cpu s" goal load command

# measure NAME COMMAND...: one row.
measure() {
	local name=$1
	shift
	[[ $name =~ $ROWS ]] || return 0
	local load
	load=$(cut -d' ' -f1 /proc/loadavg)
	rm -rf "$WORK/ft"
	/usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log" >&2; exit 1; }
	local peak
	peak=$(rss "$WORK/$name.time")
	awk -v n="$name" -v p="$peak" -v d="$disk" -v w="$(wall "$WORK/$name.time")" -v u="$(cpu "$WORK/$name.time")" -v l="$load" -v c="${*:2}" 'BEGIN {
		goal = (p < 1.25 * d + 512 * 2^20) ? "met" : "NOT"
		printf "%-9s %10.0f %9.2f %8.1f %8.1f %6s %8s  %s\n", n, p / 1e6, p / d, w, u, goal, l, c
	}'
}

measure score "$WORK/ssmax" score --model "$src" --tokens "$WORK/tokens.txt" -q
ft=("$WORK/ssmax" finetune --model "$conv" --train ssmax --seq-len 128 --steps "$STEPS" --data "$corpus"
	--tokenizer bytes --eval-every 0 --val-fraction 0 --save-every 0 --out "$WORK/ft" -q)
measure ssmax "${ft[@]}" --batch-size 1
measure "ssmax-b8" "${ft[@]}" --batch-size 8
if "$WORK/ssmax" finetune --help 2>&1 | grep -q -- --activation-checkpointing; then
	measure "ckpt-b8" "${ft[@]}" --batch-size 8 --activation-checkpointing
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
