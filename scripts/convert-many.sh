#!/usr/bin/env bash
# Convert every checkpoint under a directory to SSMax with one set of options.
#
#   scripts/convert-many.sh SRC_ROOT DST_ROOT [ssmax convert flags...]
#
# A checkpoint is any directory holding config.json and *.safetensors. Each is
# converted to the same relative path under DST_ROOT. Failures are reported
# and skipped; a summary table is printed at the end; the exit code is 1 when
# any conversion failed.
set -uo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 SRC_ROOT DST_ROOT [ssmax convert flags...]" >&2
  exit 2
fi
src_root=$(cd "$1" && pwd) || { echo "convert-many: $1: not a directory" >&2; exit 2; }
dst_root=$2
shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
ssmax=${SSMAX:-}
if [ -z "$ssmax" ]; then
  ssmax=$(mktemp -d)/ssmax
  (cd "$repo" && go build -o "$ssmax" .) || { echo "convert-many: build failed" >&2; exit 2; }
fi
mkdir -p "$dst_root"

mapfile -t dirs < <(find "$src_root" -name config.json -printf '%h\n' | sort -u)
ok=0; failed=0
rows=()
for dir in "${dirs[@]}"; do
  ls "$dir"/*.safetensors >/dev/null 2>&1 || continue
  rel=${dir#"$src_root"}; rel=${rel#/}; [ -n "$rel" ] || rel=$(basename "$dir")
  dst="$dst_root/$rel"
  mkdir -p "$(dirname "$dst")"
  start=$(date +%s.%N)
  if out=$("$ssmax" --quiet convert "$dir" "$dst" "$@" 2>&1); then
    secs=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN{print a-b}')
    rows+=("$(printf '%-40s %-6s %8.1fs  %s' "$rel" ok "$secs" "$(echo "$out" | tail -n 1)")")
    ok=$((ok + 1))
  else
    secs=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN{print a-b}')
    rows+=("$(printf '%-40s %-6s %8.1fs  %s' "$rel" FAILED "$secs" "$(echo "$out" | tail -n 1)")")
    failed=$((failed + 1))
  fi
done

printf '%-40s %-6s %9s  %s\n' CHECKPOINT STATUS TIME DETAIL
for r in "${rows[@]}"; do echo "$r"; done
echo "converted $ok, failed $failed"
[ "$failed" -eq 0 ]
