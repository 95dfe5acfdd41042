#!/usr/bin/env bash
# Long-context evaluation: forward-only tokens/s and peak RSS of the S2 shape
# (6 layers, 6 heads, d 384, vocab 8192, GPT-2 with RoPE) scoring one
# sequence of 1024, 4096 and 16384 tokens with `ssmax score --no-window`
# (one forward pass over the whole sequence, beyond the context), against
# PyTorch (bench/train_torch.py --eval-len: the same model, no_grad, manual
# causal attention, loss projected 256 positions at a time) at 1024 and 4096.
#
# The ssmax checkpoint is a random S2 model saved by a 1-step pretrain.
# tokens/s = tokens / (wall time − the wall time of scoring 2 tokens), so
# process start and checkpoint loading are not counted. PyTorch runs at 1
# and 2 threads, the better kept, without OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE in its environment (they force OpenBLAS's Haswell
# kernels; see bench/train.sh); it is not run at 16384 (its [T,T]
# attention matrices alone would take 6 GB).
#
#   bench/eval.sh
#   LENS="1024 4096" bench/eval.sh
#   LENS=65536 bench/eval.sh      # the long-context goal: under 1 GB (tens of minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

LENS=${LENS:-"1024 4096 16384"}
TORCH_LENS=${TORCH_LENS:-"1024 4096"}
THETA_SCALE=${THETA_SCALE:-1}
PY=${PY:-/usr/bin/python3}
WORK=${WORK:-$(mktemp -d /tmp/ssmax-bench-eval.XXXXXX)}
mkdir -p "$WORK"

for tool in go /usr/bin/time "$PY"; do
	command -v "$tool" >/dev/null || { echo "bench/eval.sh: $tool not found" >&2; exit 1; }
done

go build -o "$WORK/ssmax" .
corpus="$WORK/corpus.txt"
if [ ! -s "$corpus" ]; then
	(set +o pipefail; find "$(go env GOROOT)/src" -name '*.go' | LC_ALL=C sort | xargs cat 2>/dev/null | head -c 1000000 >"$corpus")
fi
ckpt="$WORK/s2"
if [ ! -s "$ckpt/final/config.json" ]; then
	rm -rf "$ckpt"
	"$WORK/ssmax" pretrain --arch bench/models/s2.yaml --data "$corpus" --tokenizer bytes --steps 1 \
		--batch-size 1 --seq-len 256 --eval-every 0 --val-fraction 0 --out "$ckpt" -q >/dev/null
fi

# tokens N FILE: N random byte ids.
tokens() { "$PY" -c 'import random, sys; random.seed(1); print(" ".join(str(random.randrange(256)) for _ in range(int(sys.argv[1]))))' "$1" >"$2"; }
rss() { awk '/Maximum resident set size/ {printf "%.0f", $6/1024}' "$1"; }
wall() { awk '/Elapsed \(wall clock\)/ {n = split($NF, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$1"; }

score() { # N -> wall seconds, RSS in $WORK/score.$N.time
	tokens "$1" "$WORK/tokens.$1"
	/usr/bin/time -v -o "$WORK/score.$1.time" "$WORK/ssmax" score --model "$ckpt/final" --tokens "$WORK/tokens.$1" --no-window \
		--rope-theta-scale "$THETA_SCALE" >"$WORK/score.$1.out"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GB; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
score 2
base=$(wall "$WORK/score.2.time")
printf '%-7s %12s %12s %8s %12s %12s %6s\n' tokens "ssmax tok/s" "torch tok/s" threads "ssmax RSS" "torch RSS" load
for n in $LENS; do
	score "$n"
	w=$(wall "$WORK/score.$n.time")
	ss=$("$PY" -c 'import sys; print("%.0f" % (int(sys.argv[1]) / max(float(sys.argv[2]) - float(sys.argv[3]), 1e-3)))' "$n" "$w" "$base")
	ss_rss=$(rss "$WORK/score.$n.time")
	best=- thr=- t_rss=-
	if [[ " $TORCH_LENS " == *" $n "* ]]; then
		best=0
		for t in 1 2; do
			/usr/bin/time -v -o "$WORK/torch.$n.$t.time" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/train_torch.py --layers 6 --heads 6 --dim 384 \
				--vocab 8192 --threads "$t" --eval-len "$n" >"$WORK/torch.$n.$t.json"
			tps=$("$PY" -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["eval_tokens_per_sec"][sys.argv[2]])' "$WORK/torch.$n.$t.json" "$n")
			if [ "$tps" -gt "$best" ]; then best=$tps thr=$t t_rss="$(rss "$WORK/torch.$n.$t.time") MB"; fi
		done
	fi
	printf '%-7s %12s %12s %8s %9s MB %12s %6s\n' "$n" "$ss" "$best" "$thr" "$ss_rss" "$t_rss" "$(cut -d' ' -f1 /proc/loadavg)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
