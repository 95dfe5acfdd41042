#!/usr/bin/env bash
# bench/convert.sh: throughput and peak memory of `ssmax convert` next to
# `cp -r` of the same checkpoint, and the throughput of --dtype conversion.
#
# Usage: bench/convert.sh [--layers N] [--rounds R] [--dir DIR] [--tmpfs DIR] [--keep]
#
#   --layers N   layers of the synthetic llama checkpoint (default 14: hidden
#                2048 as in TinyLlama-1.1B, about 1.5 GB in bf16 in two shards
#                of at most 1 GB; 22 is TinyLlama's 2.2 GB). Env: LAYERS.
#   --rounds R   measured rounds (default 5). Env: ROUNDS.
#   --dir DIR    where the temporary directory goes (default $TMPDIR or /tmp);
#                the checkpoint and every output live in it, on one file system.
#   --tmpfs DIR  a tmpfs for the --dtype throughput run (default /dev/shm when
#                it is a tmpfs with room; "none" skips that run).
#   --keep       keep the temporary directory (checkpoint and last outputs).
#   SSMAX=PATH   env: measure this ssmax binary instead of building one (A/B
#                comparisons of builds).
#   NICE=N       env: run the measured commands under `nice -n N` (all of
#                them alike; a negative N needs root) to shield them from other
#                load on a shared machine. Default: not reniced.
#
# It builds ssmax and bench/gencheckpoint, generates the checkpoint, reads it
# once untimed (page cache warm for every command), converts it once untimed
# to check the output (ssmax inspect: SSMax state, tensor count = source +
# layers; gencheckpoint -verify: every tensor byte against the generator,
# also for --dtype f16), then runs R rounds of, in turn:
#
#   cp       cp -r SRC OUT
#   convert  ssmax convert SRC OUT           (tensors copied, dtype kept)
#   f16      ssmax convert SRC OUT --dtype f16
#   f16-tmp  ssmax convert SRC TMPFS/OUT --dtype f16: the output on tmpfs,
#            so the disk is out of it: the throughput of reading, converting
#            and writing alone
#
# Fairness: ssmax fsyncs every file it writes, so every timing includes
# `sync OUT/* OUT` (fsync of the written files) after the command: data on
# disk for all of them. Right before each command the previous output is
# removed and `sync` run, untimed, so each command starts with the same
# amount of freshly freed memory and no writeback pending. Throughput is
# source bytes / median wall time over the rounds; peak RSS is the largest
# "Maximum resident set size" that /usr/bin/time -v reports over the rounds;
# CPU is the median of its user + system seconds, which other jobs on the
# machine inflate less than the wall time.
#
# The last line is
#
#   ratio convert/cp R dtype_GBps G
#
# R: cp's median wall time over convert's (above 1: convert is faster); G:
# source GB/s of f16-tmp at its median wall time (n/a without a tmpfs).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

layers=${LAYERS:-14}
rounds=${ROUNDS:-5}
base=${TMPDIR:-/tmp}
tmpfs=/dev/shm
tmpfs_given=0
keep=0
while (($#)); do
	case $1 in
	--layers) layers=${2:?--layers needs a value}; shift 2 ;;
	--layers=*) layers=${1#*=}; shift ;;
	--rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
	--rounds=*) rounds=${1#*=}; shift ;;
	--dir) base=${2:?--dir needs a value}; shift 2 ;;
	--dir=*) base=${1#*=}; shift ;;
	--tmpfs) tmpfs=${2:?--tmpfs needs a value}; tmpfs_given=1; shift 2 ;;
	--tmpfs=*) tmpfs=${1#*=}; tmpfs_given=1; shift ;;
	--keep) keep=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "convert.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
die() { echo "convert.sh: $*" >&2; exit 1; }
[[ $layers =~ ^[1-9][0-9]*$ ]] || die "--layers $layers: want a positive integer"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds $rounds: want a positive integer"
nice=()
if [[ -n ${NICE:-} ]]; then
	[[ $NICE =~ ^-?[0-9]+$ ]] || die "NICE=$NICE: want an integer"
	nice=(nice -n "$NICE")
fi
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing: install the Debian package 'time' (apt-get install time)"
for tool in go cp sync awk df du paste; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -f go.mod && -f bench/gencheckpoint/main.go ]] || die "cannot find the repository root from $0"

mkdir -p "$base"
tmp=$(mktemp -d "$base/ssmax-bench.XXXXXX")
shm=
cleanup() {
	if [[ -n $shm ]]; then
		rm -rf "$shm"
	fi
	if ((keep)); then
		echo "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gen=(-layers "$layers")
echo "== build"
if [[ -n ${SSMAX:-} ]]; then
	[[ -x $SSMAX ]] || die "SSMAX=$SSMAX is not an executable"
	cp "$SSMAX" "$tmp/ssmax"
else
	go build -o "$tmp/ssmax" .
fi
go build -o "$tmp/gencheckpoint" ./bench/gencheckpoint

size=$("$tmp/gencheckpoint" "${gen[@]}" -print-size)
avail=$(df -P -B1 "$tmp" | awk 'NR == 2 { print $4 }')
need=$((4 * size))
if ((avail < need)); then
	die "not enough free space in $tmp ($(df -P "$tmp" | awk 'NR == 2 { print $6 }')): a $layers-layer checkpoint is $((size / 1000000)) MB and the benchmark needs about 4x that, $((need / 1000000)) MB; $((avail / 1000000)) MB are free (use --dir or fewer --layers)"
fi
if [[ $tmpfs != none ]]; then
	if [[ -d $tmpfs && $(df -PT "$tmpfs" | awk 'NR == 2 { print $2 }') == tmpfs ]] &&
		(($(df -P -B1 "$tmpfs" | awk 'NR == 2 { print $4 }') > 2 * size)); then
		shm=$(mktemp -d "$tmpfs/ssmax-bench.XXXXXX")
	elif ((tmpfs_given)); then
		die "--tmpfs $tmpfs: not a tmpfs with $((2 * size / 1000000)) MB free"
	else
		echo "convert.sh: $tmpfs is not a tmpfs with room: no --dtype throughput run (see --tmpfs)" >&2
	fi
fi

fstype=$(df -PT "$tmp" | awk 'NR == 2 { print $2 }')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "== machine: $(nproc) CPUs ($cpu), $(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1e6 }' /proc/meminfo) RAM, $fstype at $tmp, kernel $(uname -r)"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg)${NICE:+; measured commands run under nice -n $NICE}"

echo "== generate $layers layers ($((size / 1000000)) MB of tensors)"
src=$tmp/src
"$tmp/gencheckpoint" "${gen[@]}" -out "$src"
inbytes=$(du -sb --apparent-size "$src" | awk '{ print $1 }')
json() { "$tmp/ssmax" inspect --json "$1"; }
# field KEY: the value of a top-level number field of `ssmax inspect --json`.
field() { awk -F'[:,]' -v k="\"$1\"" '$1 == "  " k { gsub(/ /, "", $2); print $2 }'; }
ntensors=$(json "$src" | field tensors)
cat "$src"/* >/dev/null # page cache warm for every command

echo "== check the conversion once (untimed)"
"$tmp/ssmax" convert -q "$src" "$tmp/check" >/dev/null
"$tmp/ssmax" convert -q "$src" "$tmp/check-f16" --dtype f16 >/dev/null
for out in check check-f16; do
	info=$(json "$tmp/$out")
	got=$(field tensors <<<"$info")
	((got == ntensors + layers)) || die "$out: $got tensors, want $ntensors + $layers"
	grep -q '"variant": "ssmax"' <<<"$info" || die "$out: ssmax inspect reports no SSMax state"
	"$tmp/gencheckpoint" "${gen[@]}" -verify "$tmp/$out" | sed "s/^/   $out: /"
done
grep -q '"F16": '"$ntensors" <<<"$(json "$tmp/check-f16")" || die "check-f16: not all $ntensors source tensors are F16"
"$tmp/ssmax" inspect "$tmp/check" | grep -E '^(tensors|attention) ' | sed 's/^/   /'
rm -rf "$tmp/check" "$tmp/check-f16"

# measure NAME OUT CMD...: one timed run; appends "seconds rss_kb cpu_seconds"
# to $tmp/NAME.
measure() {
	local name=$1 out=$2
	shift 2
	rm -rf "$tmp"/out-*
	if [[ -n $shm ]]; then
		rm -rf "$shm"/out-*
	fi
	sync
	local t0 t1
	t0=$(date +%s.%N)
	"${nice[@]}" /usr/bin/time -v -o "$tmp/time.txt" "$@" >/dev/null
	sync "$out"/* "$out"
	t1=$(date +%s.%N)
	local rss cpu
	rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/time.txt")
	cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$tmp/time.txt")
	awk -v a="$t0" -v b="$t1" -v r="$rss" -v c="$cpu" 'BEGIN { printf "%.3f %d %.2f\n", b - a, r, c }' >>"$tmp/$name"
}

names=(cp convert f16)
if [[ -n $shm ]]; then
	names+=(f16-tmp)
fi
echo "== measure: $rounds rounds of ${names[*]} ($((inbytes / 1000000)) MB in)"
for r in $(seq "$rounds"); do
	measure cp "$tmp/out-cp" cp -r "$src" "$tmp/out-cp"
	measure convert "$tmp/out-convert" "$tmp/ssmax" convert -q "$src" "$tmp/out-convert"
	measure f16 "$tmp/out-f16" "$tmp/ssmax" convert -q "$src" "$tmp/out-f16" --dtype f16
	if [[ -n $shm ]]; then
		measure f16-tmp "$shm/out-f16" "$tmp/ssmax" convert -q "$src" "$shm/out-f16" --dtype f16
	fi
	printf '   round %d:' "$r"
	for n in "${names[@]}"; do
		tail -n1 "$tmp/$n" | awk -v n="$n" '{ printf "  %s %.2fs", n, $1 }'
	done
	echo "  (load $(cut -d' ' -f1 /proc/loadavg))"
done
if ((!keep)); then
	rm -rf "$tmp"/out-*
fi
if [[ -n $shm ]]; then
	rm -rf "$shm"/out-*
fi

# stats NAME: median seconds, min, max, GB/s at the median, peak RSS in MB,
# median CPU seconds.
stats() {
	paste <(awk '{ print $1 }' "$tmp/$1" | sort -n) <(awk '{ print $3 }' "$tmp/$1" | sort -n) <(awk '{ print $2 }' "$tmp/$1") |
		awk -v bytes="$inbytes" '
		{ t[NR] = $1; c[NR] = $2; if ($3 > rss) rss = $3 }
		END {
			med = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
			cpu = NR % 2 ? c[(NR + 1) / 2] : (c[NR / 2] + c[NR / 2 + 1]) / 2
			printf "%.3f %.3f %.3f %.2f %.1f %.2f\n", med, t[1], t[NR], bytes / med / 1e9, rss / 1024, cpu
		}'
}
read -r cp_s cp_min cp_max cp_gbs cp_rss cp_cpu <<<"$(stats cp)"
read -r cv_s cv_min cv_max cv_gbs cv_rss cv_cpu <<<"$(stats convert)"
read -r f16_s f16_min f16_max f16_gbs f16_rss f16_cpu <<<"$(stats f16)"
tmp_gbs=n/a
if [[ -n $shm ]]; then
	read -r tmp_s tmp_min tmp_max tmp_gbs tmp_rss tmp_cpu <<<"$(stats f16-tmp)"
fi

echo
echo "== summary: $((inbytes / 1000000)) MB in ($layers layers, $ntensors tensors), median of $rounds rounds, each including fsync of its output"
printf '%-40s %8s %13s %6s %6s %12s\n' command seconds "(min-max)" GB/s "CPU s" "peak RSS MB"
row() { printf '%-40s %8.2f %13s %6.2f %6.2f %12.1f\n' "$1" "$2" "($(printf '%.2f-%.2f' "$3" "$4"))" "$5" "$7" "$6"; }
row "cp -r + sync" "$cp_s" "$cp_min" "$cp_max" "$cp_gbs" "$cp_rss" "$cp_cpu"
row "ssmax convert" "$cv_s" "$cv_min" "$cv_max" "$cv_gbs" "$cv_rss" "$cv_cpu"
row "ssmax convert --dtype f16" "$f16_s" "$f16_min" "$f16_max" "$f16_gbs" "$f16_rss" "$f16_cpu"
if [[ -n $shm ]]; then
	row "ssmax convert --dtype f16, out on tmpfs" "$tmp_s" "$tmp_min" "$tmp_max" "$tmp_gbs" "$tmp_rss" "$tmp_cpu"
fi
echo "   load average at end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
ratio=$(awk -v a="$cp_s" -v b="$cv_s" 'BEGIN { printf "%.2f", a / b }')
f16ratio=$(awk -v a="$cp_s" -v b="$f16_s" 'BEGIN { printf "%.2f", a / b }')
echo "f16/cp throughput ratio $f16ratio; peak RSS keep $(printf '%.0f' "$cv_rss") MB, f16 $(printf '%.0f' "$f16_rss") MB"
echo "ratio convert/cp $ratio dtype_GBps $tmp_gbs"
