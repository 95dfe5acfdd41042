#!/usr/bin/env bash
# Reproduce the paper's six configurations at small scale and write a report.
#
#   scripts/reproduce.sh [--quick] [--out DIR] [--data DIR] [--glob GLOB]
#
# (a) softmax, (b) ssmax, (c) fixed, (d) bias: pretrained from scratch with
# that attention; (e) softmax pretrained, converted with `ssmax convert`,
# fine-tuned; (f) softmax switched to SSMax late in pretraining. Same tokens
# and steps for all (configs/experiments/*.yaml). Then loss against context
# length (RoPE theta x50 beyond the training length, as the paper did),
# needle-in-a-haystack and attention on the needle for all six, and
# DIR/report.md with the tables, plots, exact commands and wall time.
#
# The corpus defaults to the Go source tree of the installed Go (*.go files,
# read as bytes); 5% of the files (seed 1) are held out for evaluation.
# --quick runs a tiny model for a few steps: a smoke test of the whole
# pipeline in a few minutes (part of CI).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
quick=0
out=""
data="$(go env GOROOT)/src"
glob='*.go'
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --data) data=$2; shift ;;
    --glob) glob=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "reproduce: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$out" ]; then
  if [ $quick = 1 ]; then out=$(mktemp -d)/reproduce-quick; else out="$repo/out/reproduce"; fi
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$repo"
start=$(date +%s)
log="$out/commands.log"
: > "$log"

# run prints and records a command, then runs it.
run() {
  echo "+ $*" | sed "s#$out#\$OUT#g; s#$repo/##g" >> "$log"
  echo "+ $*" >&2
  "$@"
}

bin="$out/bin/ssmax"
mkdir -p "$out/bin"
go build -o "$bin" .
ssmax() { run "$bin" --quiet "$@"; }

exp=configs/experiments
# Scale: the full run uses the configs as written; --quick overrides them.
if [ $quick = 1 ]; then
  scale=(--arch configs/models/gpt2-rope-tiny.yaml --steps 64 --batch-size 4 --seq-len 128 --warmup 4 --eval-every 16 --eval-batches 4 --lr 3e-3 --min-lr 3e-4)
  switch_at=48; save_every=16
  e_scale=(--steps 16 --batch-size 4 --seq-len 128 --warmup 2 --eval-every 16 --eval-batches 4 --lr 1e-3)
  train_len=128
  lengths=128,256,512,1024; samples=2
  niah_lengths=128,256,512; depths=0,0.5,1; trials=2
  attn_length=512
else
  scale=()
  switch_at=$(sed -n 's/^switch-to-ssmax-at: *//p' $exp/f-switch.yaml)
  save_every=$(sed -n 's/^save-every: *//p' $exp/a-softmax.yaml)
  e_scale=()
  train_len=256
  lengths=256,512,1024,2048,4096; samples=8
  niah_lengths=256,512,1024,2048; depths=0,0.25,0.5,0.75,1; trials=4
  attn_length=1024
fi
e_from=$(sed -n 's/^pretrain-steps: *//p' $exp/e-convert-finetune.yaml)
[ $quick = 1 ] && e_from=$switch_at

# One tokenization of the corpus, shared by every run (bytes; 256 ends a file).
tokens="$out/corpus.bin"
[ -f "$tokens" ] || ssmax tokenize --tokenizer bytes --eos 256 --data "$data" --glob "$glob" --out "$tokens"

runs="$out/runs"
mkdir -p "$runs"
for cfg in a-softmax b-ssmax c-fixed d-bias f-switch; do
  extra=()
  [ $cfg = a-softmax ] && extra=(--save-every "$save_every" --keep 100)
  [ $cfg = f-switch ] && [ $quick = 1 ] && extra=(--switch-to-ssmax-at "$switch_at" --train-len "$train_len")
  ssmax pretrain --config "$exp/$cfg.yaml" --data "$tokens" --out "$runs/$cfg" "${scale[@]}" "${extra[@]}"
done
src_step=$(printf '%s/a-softmax/step_%06d' "$runs" "$e_from")
[ -d "$src_step" ] || { echo "reproduce: $src_step missing: (a) must save at step $e_from" >&2; exit 1; }
ssmax convert "$src_step" "$runs/e-convert-finetune.converted" --force \
  --variant "$(sed -n 's/^variant: *//p' $exp/e-convert-finetune.yaml)" \
  --init "$(sed -n 's/^init: *//p' $exp/e-convert-finetune.yaml)" --train-len "$train_len"
ssmax finetune --config "$exp/e-convert-finetune.yaml" --model "$runs/e-convert-finetune.converted" \
  --data "$tokens" --out "$runs/e-convert-finetune" "${e_scale[@]}" --train-len "$train_len"

models=()
for cfg in a-softmax b-ssmax c-fixed d-bias e-convert-finetune f-switch; do
  models+=(--model "$runs/$cfg/final")
done
ev="$out/eval"
mkdir -p "$ev/length" "$ev/length-theta1" "$ev/niah" "$ev/attention"
haystack="$(go env GOROOT)/src/go/types"
ssmax eval length "${models[@]}" --data "$tokens" --lengths "$lengths" --samples "$samples" \
  --rope-theta-scale 50 --out "$ev/length" | grep -v '^wrote ' > "$ev/length/table.txt"
ssmax eval length "${models[@]}" --data "$tokens" --lengths "$lengths" --samples "$samples" \
  --out "$ev/length-theta1" | grep -v '^wrote ' > "$ev/length-theta1/table.txt"
ssmax eval niah "${models[@]}" --haystack "$haystack" --glob '*.go' --lengths "$niah_lengths" \
  --depths "$depths" --trials "$trials" --rope-theta-scale 50 --out "$ev/niah" | grep -v '^wrote ' > "$ev/niah/table.txt"
ssmax eval attention "${models[@]}" --haystack "$haystack" --glob '*.go' --length "$attn_length" \
  --trials "$trials" --rope-theta-scale 50 --out "$ev/attention" | grep -v '^wrote ' > "$ev/attention/table.txt"

# Final validation loss of each run (last val_loss in its metrics).
val_loss() { grep -o '"val_loss":[0-9.eE+-]*' "$1/metrics.jsonl" | tail -n 1 | cut -d: -f2 | awk '{printf "%.4f", $1}'; }
elapsed=$(( $(date +%s) - start ))
report="$out/report.md"
{
  echo "# SSMax reproduction at small scale"
  echo
  if [ $quick = 1 ]; then echo "Mode: **quick** (smoke test: tiny model, few steps; the numbers mean nothing)."; else echo "Mode: full."; fi
  echo "Corpus: \`$data\` ($glob), read as bytes; 5% of the files held out (seed 1)."
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(go version | cut -d' ' -f3)."
  echo "Wall time: $((elapsed / 60)) min $((elapsed % 60)) s. Date: $(date -u +%Y-%m-%d)."
  echo
  echo "## Training"
  echo
  echo "| configuration | final validation loss (nats/byte) |"
  echo "|---|---|"
  for cfg in a-softmax b-ssmax c-fixed d-bias e-convert-finetune f-switch; do
    echo "| $cfg | $(val_loss "$runs/$cfg") |"
  done
  echo
  echo "## Loss against context length (RoPE theta x50)"
  echo
  echo '```'; cat "$ev/length/table.txt"; echo '```'
  echo
  echo "![loss vs length](eval/length/length.png)"
  echo
  echo "## Loss against context length (RoPE theta as trained)"
  echo
  echo '```'; cat "$ev/length-theta1/table.txt"; echo '```'
  echo
  echo "![loss vs length](eval/length-theta1/length.png)"
  echo
  echo "## Needle in a haystack (RoPE theta x50)"
  echo
  echo '```'; cat "$ev/niah/table.txt"; echo '```'
  echo
  echo "![niah](eval/niah/niah.png)"
  echo
  echo "## Attention on the needle (length $attn_length, RoPE theta x50)"
  echo
  echo '```'; cat "$ev/attention/table.txt"; echo '```'
  echo
  echo "![attention](eval/attention/attention.png)"
  echo
  echo "## Commands"
  echo
  echo '```'; cat "$log"; echo '```'
} > "$report"
echo "wrote $report ($((elapsed / 60)) min $((elapsed % 60)) s)"
