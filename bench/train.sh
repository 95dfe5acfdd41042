#!/usr/bin/env bash
# Training throughput of ssmax against PyTorch on the same shapes (softmax
# attention, AdamW, clipping at 1): three GPT-2 shapes (GPT-2 with RoPE,
# tied head) and a Llama one (RMSNorm, grouped-query attention, SwiGLU, RoPE,
# untied head):
#
#   S1: 4 layers, 4 heads, d 256, ctx 256, vocab 8192, batch 8
#   S2: 6 layers, 6 heads, d 384, ctx 256, vocab 8192, batch 8
#   S3: 12 layers, 12 heads, d 768, ctx 256, vocab 50257, batch 4
#   L1: Llama, 8 layers, 8 heads, 4 KV heads, d 512, SwiGLU 1376, ctx 256,
#       vocab 32000, batch 4
#
# ssmax side: `ssmax pretrain --arch bench/models/sN.yaml` on a byte corpus
# (the first 4 MB of the Go sources), tokens/s from OUT/metrics.jsonl:
# median over the steps after the warm-up. PyTorch side: bench/train_torch.py
# (the same model on random token ids), at 1 and at 2 threads, the better
# one kept, and with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its
# environment: set (as some environments do for old OpenBLAS builds) they
# force OpenBLAS's Haswell kernels, slower on newer CPUs; PyTorch runs with
# OpenBLAS's own choice. Peak RSS of each process from /usr/bin/time -v.
#
#   bench/train.sh                 # all four shapes, ~20 minutes
#   SHAPES="s1 l1" bench/train.sh  # a subset
#   STEPS=30 S3_STEPS=8 WARMUP=5 bench/train.sh   # S3_* also apply to L1
#   ROUNDS=3 SHAPES=s3 bench/train.sh  # 3 rounds of ours then PyTorch
#
# With ROUNDS=N (default 1) each shape is measured N times in a row, ours
# then PyTorch (both thread counts) in each round, and the ratio reported is
# the median of the N per-round ratios: on a VM whose speed drifts between
# runs minutes apart, a ratio of two measurements taken close together is
# steadier than one measurement of each.
#
# Needs go, /usr/bin/time (apt-get install time) and Debian's python3-torch
# with OpenBLAS (apt-get install python3-torch libopenblas0): Debian's torch
# takes its BLAS from the system, and without OpenBLAS falls back to the
# slow reference BLAS. The last line is `ratio S1 a S2 b S3 c L1 d` (ssmax
# tokens/s over PyTorch's).
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPES=${SHAPES:-"s1 s2 s3 l1"}
STEPS=${STEPS:-20}
S3_STEPS=${S3_STEPS:-8}
WARMUP=${WARMUP:-4}
S3_WARMUP=${S3_WARMUP:-3}
ROUNDS=${ROUNDS:-1}
PY=${PY:-/usr/bin/python3}
WORK=${WORK:-$(mktemp -d /tmp/ssmax-bench-train.XXXXXX)}
mkdir -p "$WORK"

for tool in go /usr/bin/time "$PY"; do
	command -v "$tool" >/dev/null || { echo "bench/train.sh: $tool not found" >&2; exit 1; }
done
"$PY" -c 'import torch' 2>/dev/null || { echo "bench/train.sh: $PY cannot import torch (apt-get install python3-torch libopenblas0)" >&2; exit 1; }
case "$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null)" in
*openblas*) ;;
*) echo "bench/train.sh: warning: libblas.so.3 is not OpenBLAS; PyTorch will be slow" >&2 ;;
esac

go build -o "$WORK/ssmax" .
corpus="$WORK/corpus.txt"
if [ ! -s "$corpus" ]; then
	(set +o pipefail; find "$(go env GOROOT)/src" -name '*.go' | LC_ALL=C sort | xargs cat 2>/dev/null | head -c 4000000 >"$corpus")
fi

# shape NAME -> "arch layers heads kv-heads dim intermediate vocab batch"
shape() {
	case $1 in
	s1) echo "gpt2 4 4 4 256 1024 8192 8" ;;
	s2) echo "gpt2 6 6 6 384 1536 8192 8" ;;
	s3) echo "gpt2 12 12 12 768 3072 50257 4" ;;
	l1) echo "llama 8 8 4 512 1376 32000 4" ;;
	*) echo "unknown shape $1" >&2; exit 1 ;;
	esac
}



# rss FILE: peak RSS in MB from /usr/bin/time -v output.
rss() { awk '/Maximum resident set size/ {printf "%.0f", $6/1024}' "$1"; }

# median_tps METRICS SKIP: median tokens/s of the steps after SKIP.
median_tps() {
	"$PY" - "$1" "$2" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tps = [r["tokens_per_sec"] for r in rows if r["step"] > int(sys.argv[2])] or [r["tokens_per_sec"] for r in rows]
print("%.1f" % statistics.median(tps))
EOF
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ssmax: $(go version | cut -d' ' -f3), GOMAXPROCS $(nproc); torch $("$PY" -c 'import torch; print(torch.__version__)'), BLAS $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null)"
echo "PyTorch runs without OPENBLAS_CORETYPE (here: ${OPENBLAS_CORETYPE:-unset}) and OPENBLAS_L2_SIZE (here: ${OPENBLAS_L2_SIZE:-unset}); $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-5s %8s %12s %12s %8s %8s %12s %12s\n' shape steps "ssmax tok/s" "torch tok/s" threads ratio "ssmax RSS" "torch RSS"

ratios=""
for s in $SHAPES; do
	read -r arch layers heads kvheads dim inter vocab batch <<<"$(shape "$s")"
	steps=$STEPS warm=$WARMUP
	if [ "$s" = s3 ] || [ "$s" = l1 ]; then steps=$S3_STEPS warm=$S3_WARMUP; fi

	round_ratios=""
	for round in $(seq "$ROUNDS"); do
		out="$WORK/$s"
		rm -rf "$out"
		/usr/bin/time -v -o "$WORK/$s.ssmax.time" "$WORK/ssmax" pretrain --arch "bench/models/$s.yaml" \
			--data "$corpus" --tokenizer bytes --steps "$steps" --batch-size "$batch" --seq-len 256 \
			--eval-every 0 --val-fraction 0 --save-every 0 --out "$out" -q >"$WORK/$s.ssmax.log" 2>&1 ||
			{ cat "$WORK/$s.ssmax.log" >&2; exit 1; }
		ss_tps=$(median_tps "$out/metrics.jsonl" "$warm")
		ss_rss=$(rss "$WORK/$s.ssmax.time")

		best_tps=0 best_thr=0 best_rss=0
		for thr in 1 2; do
			/usr/bin/time -v -o "$WORK/$s.torch$thr.time" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/train_torch.py \
				--arch "$arch" --layers "$layers" --heads "$heads" --kv-heads "$kvheads" --dim "$dim" --intermediate "$inter" \
				--vocab "$vocab" --ctx 256 --batch "$batch" --steps "$steps" --warmup "$warm" \
				--threads "$thr" >"$WORK/$s.torch$thr.json"
			tps=$("$PY" -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["tokens_per_sec"])' "$WORK/$s.torch$thr.json")
			if "$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$tps" "$best_tps"; then
				best_tps=$tps best_thr=$thr best_rss=$(rss "$WORK/$s.torch$thr.time")
			fi
		done
		ratio=$("$PY" -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$ss_tps" "$best_tps")
		printf '%-5s %8s %12s %12s %8s %8s %9s MB %9s MB  load %s\n' "$s" "$steps" "$ss_tps" "$best_tps" "$best_thr" "$ratio" "$ss_rss" "$best_rss" "$(cut -d' ' -f1 /proc/loadavg)"
		round_ratios="$round_ratios $ratio"
	done
	if [ "$ROUNDS" -gt 1 ]; then
		ratio=$("$PY" -c 'import statistics, sys; print("%.2f" % statistics.median(map(float, sys.argv[1:])))' $round_ratios)
		echo "$s: median of $ROUNDS rounds $ratio (rounds:$round_ratios)"
	fi
	ratios="$ratios $(echo "$s" | tr a-z A-Z) $ratio"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio$ratios"
