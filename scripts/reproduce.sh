#!/usr/bin/env bash
# Reproduce the paper's six configurations at small scale over several seeds
# and write a report with the spread over seeds.
#
#   scripts/reproduce.sh [--quick] [--seeds 1,2,3] [--jobs N] [--out DIR] [--data DIR] [--glob GLOB]
#
# Per seed (initial weights and data order; the held-out documents are the
# same for every seed): (a) softmax, (b) ssmax, (c) fixed, (d) bias,
# pretrained from scratch with that attention; (e) (a)'s checkpoint at the
# conversion step converted with `ssmax convert` and fine-tuned for the
# remaining steps; (f) (a)'s run from that step on with every layer switched
# to SSMax (it resumes (a)'s checkpoint: up to the switch the two runs are the
# same computation). Same tokens and steps for all (configs/experiments/).
# Every run mixes the same fraction of synthetic retrieval documents
# (package retrieval; the configs choose passkeys: one record among filler
# words, asked for at the end) into the Go source tree. Then, per seed: the
# conversion initialisations compared (zero-shot and after an s-only
# fine-tune), loss against context length (RoPE theta x50, as the paper; and
# as trained), key retrieval with the attention on the key, and
# DIR/summary.json, DIR/report.md and DIR/plots/ (scripts/summarize).
#
# Restartable: a finished run, conversion or evaluation is kept and skipped;
# an interrupted training run resumes from its newest checkpoint (losses as
# an uninterrupted run). Everything is seeded, so a rerun in a fresh DIR
# gives the same numbers (up to the floating-point order of threads).
# --quick runs a tiny model for a few steps with 2 seeds: a smoke test of the
# whole pipeline (part of CI); its numbers mean nothing.
# --jobs N runs N seeds at a time, each process with GOMAXPROCS = cores / N
# (at least 1): models this small use one core better than two, so on 2
# cores --jobs 2 finishes sooner than one seed after the other (default 1).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
quick=0
out=""
seeds=""
njobs=1
data="$(go env GOROOT)/src"
glob='*.go'
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --seeds) seeds=$2; shift ;;
    --data) data=$2; shift ;;
    --glob) glob=$2; shift ;;
    --jobs) njobs=$2; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "reproduce: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$njobs" in ''|*[!0-9]*|0) echo "reproduce: --jobs wants a positive integer, got '$njobs'" >&2; exit 2 ;; esac
if [ -z "$seeds" ]; then
  if [ $quick = 1 ]; then seeds=1,2; else seeds=1,2,3; fi
fi
if [ -z "$out" ]; then
  if [ $quick = 1 ]; then out=$(mktemp -d)/reproduce-quick; else out="$repo/out/reproduce"; fi
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$repo"
start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log="$out/commands.log"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) scripts/reproduce.sh $([ $quick = 1 ] && echo --quick) --seeds $seeds" >> "$log"

# run prints and records a command, then runs it.
run() {
  echo "+ $*" | sed "s#$out#\$OUT#g; s#$repo/##g" >> "$log"
  echo "+ $*" >&2
  "$@"
}

bin="$out/bin/ssmax"
mkdir -p "$out/bin"
go build -o "$bin" .
go build -o "$out/bin/summarize" ./scripts/summarize
ssmax() { run "$bin" --quiet "$@"; }

exp=configs/experiments
key() { sed -n "s/^$1: *//p" "$exp/$2.yaml"; }
# Scale: the full run uses the configs as written; --quick overrides them.
if [ $quick = 1 ]; then
  train_len=128
  scale=(--arch configs/models/gpt2-rope-tiny.yaml --steps 48 --batch-size 4 --seq-len $train_len --warmup 4
         --eval-every 16 --eval-batches 2 --lr 3e-3 --min-lr 3e-4)
  switch_at=36
  e_scale=(--steps 12 --batch-size 4 --seq-len $train_len --warmup 2 --eval-every 12 --eval-batches 2 --lr 1e-3)
  inits_steps=4; calib_tokens=1024; calib_steps=3
  lengths=128,256,512,1024,2048; samples=2
  r_lengths=$lengths; depths=0,0.5,1; trials=2
else
  train_len=$(key seq-len a-softmax)
  scale=()
  switch_at=$(key switch-to-ssmax-at f-switch)
  e_scale=()
  inits_steps=$(key s-only-steps e-convert-finetune); calib_tokens=16384; calib_steps=40
  lengths=256,512,1024,2048,4096; samples=16
  r_lengths=256,512,1024,2048,4096; depths=0,0.5,1; trials=6
fi
# The retrieval evaluation asks what training taught (configs a-softmax's task).
r_task=()
[ "$(key retrieval-passkey a-softmax)" = true ] && r_task+=(--passkey)
for k in key-len value-len; do v=$(key retrieval-$k a-softmax); [ -n "$v" ] && r_task+=(--$k "$v"); done
e_from=$(key pretrain-steps e-convert-finetune)
[ $quick = 1 ] && e_from=$switch_at
[ "$e_from" = "$switch_at" ] || { echo "reproduce: (e) converts at step $e_from, (f) switches at $switch_at: they must share (a)'s checkpoint" >&2; exit 1; }

# One tokenization of the corpus, shared by every run (bytes; 256 ends a file).
tokens="$out/corpus.bin"
[ -f "$tokens" ] || ssmax tokenize --tokenizer bytes --eos 256 --data "$data" --glob "$glob" --out "$tokens"

done_run() { [ -f "$1/final/DONE" ]; }

# run_seed SEED trains, converts and evaluates every configuration of one
# seed (the work of one --jobs slot).
run_seed() {
  local seed=$1
  runs="$out/runs/seed$seed"
  mkdir -p "$runs"
  common=(--data "$tokens" --seed "$seed" --split-seed 1 --resume)
  for cfg in a-softmax b-ssmax c-fixed d-bias; do
    done_run "$runs/$cfg" && continue
    extra=()
    [ $cfg = a-softmax ] && extra=(--save-every "$switch_at" --keep 100)
    ssmax pretrain --config "$exp/$cfg.yaml" "${common[@]}" --out "$runs/$cfg" "${scale[@]}" "${extra[@]}"
  done
  src_step=$(printf '%s/a-softmax/step_%06d' "$runs" "$switch_at")
  [ -f "$src_step/DONE" ] || { echo "reproduce: $src_step missing: (a) must save at step $switch_at" >&2; exit 1; }

  # (f): (a)'s run up to the switch, then SSMax.
  f="$runs/f-switch"
  if ! done_run "$f"; then
    if ! ls -d "$f"/step_* >/dev/null 2>&1; then
      mkdir -p "$f"
      run cp -r "$src_step" "$f/"
      awk -v s="$switch_at" -F'"step":' '{split($2, a, ","); if (a[1] + 0 <= s) print}' "$runs/a-softmax/metrics.jsonl" > "$f/metrics.jsonl"
    fi
    fq=()
    [ $quick = 1 ] && fq=(--switch-to-ssmax-at "$switch_at" --train-len "$train_len")
    ssmax pretrain --config "$exp/f-switch.yaml" "${common[@]}" --out "$f" "${scale[@]}" "${fq[@]}"
  fi

  # (e): convert (a) at the switch step, then fine-tune.
  e_init=$(key init e-convert-finetune)
  calib=()
  [ "$e_init" = calibrate ] && calib=(--calib-data "$tokens" --calib-tokens "$calib_tokens" --calib-steps "$calib_steps")
  conv="$runs/e-convert-finetune.converted"
  [ -d "$conv" ] || ssmax convert "$src_step" "$conv" --variant "$(key variant e-convert-finetune)" \
    --init "$e_init" --train-len "$train_len" "${calib[@]}" > /dev/null
  done_run "$runs/e-convert-finetune" || ssmax finetune --config "$exp/e-convert-finetune.yaml" --model "$conv" \
    "${common[@]}" --out "$runs/e-convert-finetune" "${e_scale[@]}" --train-len "$train_len"

  # The conversion initialisations on (a)'s checkpoint: zero-shot and after
  # an s-only fine-tune (validation loss before and after).
  inits="$out/inits/seed$seed"
  for spec in match:ssmax const:ssmax identity:bias calibrate:ssmax; do
    init=${spec%%:*}; variant=${spec##*:}
    d="$inits/$init-$variant"
    [ -f "$d/finetune.txt" ] && continue
    mkdir -p "$d"
    extra=()
    [ $init = const ] && extra=(--s 0.3)
    [ $init = calibrate ] && extra=(--calib-data "$tokens" --calib-tokens "$calib_tokens" --calib-steps "$calib_steps")
    ssmax convert "$src_step" "$d/converted" --force --variant "$variant" --init "$init" --train-len "$train_len" "${extra[@]}" > "$d/calibration.txt"
    rm -rf "$d/run"
    ssmax finetune --model "$d/converted" "${common[@]}" --out "$d/run" --train ssmax --ssmax-lr 1e-2 --lr 1e-3 --min-lr 1e-3 \
      --schedule constant --steps "$inits_steps" --batch-size 8 --seq-len "$train_len" --eval-every "$inits_steps" \
      --eval-batches "$([ $quick = 1 ] && echo 2 || echo 16)" --keep 1 > "$d/finetune.txt.tmp"
    mv "$d/finetune.txt.tmp" "$d/finetune.txt"
    rm -rf "$d/run/step_"* "$d/run/final" "$d/converted"
  done

  # Evaluations of the six final models of this seed.
  models=()
  for cfg in a-softmax b-ssmax c-fixed d-bias e-convert-finetune f-switch; do
    models+=(--model "$runs/$cfg/final")
  done
  ev="$out/eval/seed$seed"
  mkdir -p "$ev"
  evaluate() { # evaluate NAME FILE COMMAND...: run an evaluation into $ev/NAME unless done
    local name=$1 file=$2; shift 2
    [ -f "$ev/$name/$file" ] && return 0
    ssmax eval "$@" "${models[@]}" --out "$ev/$name.tmp" | grep -v '^wrote ' > "$ev/$name.table.tmp"
    mv "$ev/$name.table.tmp" "$ev/$name.tmp/table.txt"
    rm -rf "$ev/$name"; mv "$ev/$name.tmp" "$ev/$name"
  }
  evaluate length length.json length --data "$tokens" --seed 1 --lengths "$lengths" --samples "$samples" --rope-theta-scale 50
  evaluate length-theta1 length.json length --data "$tokens" --seed 1 --lengths "$lengths" --samples "$samples"
  evaluate retrieval retrieval.json retrieval --lengths "$r_lengths" --depths "$depths" --trials "$trials" --seed 1 \
    "${r_task[@]}" --attention --rope-theta-scale 50
  evaluate retrieval-theta1 retrieval.json retrieval --lengths "$r_lengths" --depths "$depths" --trials "$trials" --seed 1 \
    "${r_task[@]}"
}

threads=$(( $(nproc) / njobs ))
[ $threads -ge 1 ] || threads=1
if [ "$njobs" = 1 ]; then
  for seed in ${seeds//,/ }; do run_seed "$seed"; done
else
  # N seeds at a time; a failed seed fails the script once the others end.
  pids=()
  failed=0
  for seed in ${seeds//,/ }; do
    while [ "$(jobs -rp | wc -l)" -ge "$njobs" ]; do wait -n || failed=1; done
    (export GOMAXPROCS=$threads; run_seed "$seed") > "$out/seed$seed.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if [ $failed = 1 ]; then
    echo "reproduce: a seed failed; see $out/seed*.log" >&2
    exit 1
  fi
fi

elapsed=$(( $(date +%s) - start ))
header="$out/header.md"
{
  echo "# SSMax reproduction at small scale"
  echo
  if [ $quick = 1 ]; then echo "Mode: **quick** (smoke test: tiny model, few steps; the numbers mean nothing)."; else echo "Mode: full."; fi
  echo "Corpus: \`$data\` ($glob), read as bytes; 5% of the files held out (split seed 1, the same for every seed);"
  echo "$(key mix-retrieval a-softmax | sed 's/^$/0/') of the training sequences are synthetic retrieval documents (\`--mix-retrieval\`$([ "$(key retrieval-passkey a-softmax)" = true ] && echo ', passkeys: one record among filler words, asked for at the end'))."
  echo "Training length L = $train_len."
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(go version | cut -d' ' -f3);"
  echo "load average at the start $load_start, at the end $(cut -d' ' -f1-3 /proc/loadavg) (other jobs inflate the wall time)."
  echo "Wall time of this invocation: $((elapsed / 60)) min $((elapsed % 60)) s (a resumed run counts only its own part). Date: $(date -u +%Y-%m-%d)."
  echo
} > "$header"
q=()
[ $quick = 1 ] && q=(--quick)
run "$out/bin/summarize" --out "$out" --seeds "$seeds" --train-len "$train_len" --elapsed "$elapsed" \
  --header "$header" --commands "$log" "${q[@]}"
echo "wrote $out/report.md, $out/summary.json ($((elapsed / 60)) min $((elapsed % 60)) s)"
