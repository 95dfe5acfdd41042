#!/usr/bin/env bash
# bench/gemm.sh: GEMM throughput of kernels' gemm next to OpenBLAS and the
# previous pure-Go gemm, on the products of a GPT-2-small training step.
#
# Installs libopenblas-dev when missing (Debian, as root), runs
#   go test -tags openblas -run '^$' -bench 'Gemm(OpenBLAS)?/impl=(ours|openblas|legacy)/' ./kernels
# and prints one row per shape (m x k x n) and transposition, with the best
# GFLOP/s of COUNT runs of each, and the ratios.
#
# Then, with OpenBLAS, the paired benchmark (BenchmarkGemmPaired: ours and
# OpenBLAS alternating on the same operands, PAIRS calls each, default 6;
# PAIRS=0 skips it) prints the median per-pair ratio per shape: drift of a
# shared VM's speed hits both alike there, so it is the figure to compare.
#
# Environment: COUNT (default 3), BENCHTIME (go test -benchtime, default 1s),
# VARIANTS (regexp over NN|NT|TN, default all), SLOW=1 to include the legacy
# path on the 50257-column shape (tens of seconds per product), RAW=file to
# keep go test's output. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed
# from go test's environment (set, as some environments do for old OpenBLAS
# builds, they force OpenBLAS's Haswell kernels, slower on newer CPUs):
# OpenBLAS runs with its own choice of kernels, at its best. OPENBLAS_KEEP=1
# keeps them.
# Without OpenBLAS (no apt-get, not root), only ours and legacy are shown.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-3}
BENCHTIME=${BENCHTIME:-1s}
VARIANTS=${VARIANTS:-NN|NT|TN}
RAW=${RAW:-$(mktemp)}

have_cblas() {
	local h
	for h in /usr/include/cblas.h /usr/include/*/cblas.h; do
		[ -e "$h" ] && return 0
	done
	return 1
}
if ! have_cblas && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "installing libopenblas-dev..." >&2
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >&2
fi
tags=()
if have_cblas && command -v gcc >/dev/null; then
	tags=(-tags openblas)
else
	echo "OpenBLAS (libopenblas-dev) or a C compiler is missing: benchmarking without it" >&2
fi

slow=()
if [ "${SLOW:-}" = 1 ]; then
	slow=(-args -gemm.slow)
fi

unset_env=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
if [ "${OPENBLAS_KEEP:-}" = 1 ]; then unset_env=(); fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-} in this shell; removed for go test: ${unset_env[*]:-no}; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)" >&2
echo "go test ${tags[*]} -run '^\$' -bench 'Gemm(OpenBLAS)?/impl=(ours|openblas|legacy)/.*/($VARIANTS)\$' -count $COUNT -benchtime $BENCHTIME ./kernels ${slow[*]}" >&2
env "${unset_env[@]}" go test "${tags[@]}" -run '^$' -bench "Gemm(OpenBLAS)?/impl=(ours|openblas|legacy)/.*/($VARIANTS)\$" \
	-count "$COUNT" -benchtime "$BENCHTIME" ./kernels "${slow[@]}" | tee "$RAW" | grep -E '^(Benchmark|cpu:|ok|FAIL)' >&2 || true

awk '
/^cpu:/ { sub(/^cpu: */, ""); cpu = $0 }
/^Benchmark.*GFLOP\/s/ {
	name = $1
	sub(/-[0-9]+$/, "", name)                  # -GOMAXPROCS suffix
	split(name, p, "/")                        # Benchmark..., impl=X, shape, variant
	impl = p[2]; sub(/^impl=/, "", impl)
	key = p[3] " " p[4]
	g = 0; c = 0
	for (i = 2; i < NF; i++) {
		if ($(i+1) == "GFLOP/s") g = $i + 0
		if ($(i+1) == "GFLOP/cpu-s*P") c = $i + 0
	}
	if (!(key in seen)) { seen[key] = 1; order[++rows] = key }
	if (g > best[impl, key]) best[impl, key] = g
	if (c > bestc[impl, key]) bestc[impl, key] = c
}
function f(x) { return x ? sprintf("%.1f", x) : "-" }
function r(x, y, d) { return x && y ? sprintf("%." d "fx", x / y) : "-" }
END {
	if (cpu != "") print "cpu: " cpu
	printf "%-16s %-3s | %7s %8s %7s %8s %8s | %7s %8s %8s\n", "m x k x n", "op", "ours", "openblas", "legacy", "ours/obl", "ours/old", "ours*", "openblas*", "ratio*"
	for (q = 1; q <= rows; q++) {
		k = order[q]; split(k, kv, " ")
		o = best["ours", k]; b = best["openblas", k]; l = best["legacy", k]
		oc = bestc["ours", k]; bc = bestc["openblas", k]
		printf "%-16s %-3s | %7s %8s %7s %8s %8s | %7s %8s %8s\n", kv[1], kv[2], f(o), f(b), f(l), r(o, b, 2), r(o, l, 1), f(oc), f(bc), r(oc, bc, 2)
	}
	print "GFLOP/s (wall clock), best of the runs. ours: the native gemm (assembly micro-kernel); legacy: the previous"
	print "pure-Go gemm. *: GFLOP per CPU-second of the process x GOMAXPROCS, the wall-clock figure expected on"
	print "otherwise idle cores (robust to other processes sharing the machine; spinning counts as busy)."
}' "$RAW"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ ${#tags[@]} -gt 0 ] && [ "${PAIRS:-6}" != 0 ]; then
	echo "go test ${tags[*]} -run '^\$' -bench 'GemmPaired/.*/($VARIANTS)\$' -benchtime ${PAIRS:-6}x ./kernels" >&2
	env "${unset_env[@]}" go test "${tags[@]}" -run '^$' -bench "GemmPaired/.*/($VARIANTS)\$" -benchtime "${PAIRS:-6}x" ./kernels |
		tee -a "$RAW" | awk '
/^BenchmarkGemmPaired/ {
	name = $1; sub(/-[0-9]+$/, "", name); split(name, p, "/")
	for (i = 2; i < NF; i++) {
		if ($(i+1) == "ours-GFLOP/cpu-s*P") o = $i
		if ($(i+1) == "openblas-GFLOP/cpu-s*P") b = $i
		if ($(i+1) == "ours/openblas") r = $i
	}
	if (!hdr++) printf "%-16s %-3s | %7s %8s %8s   (paired: medians over %s alternating calls)\n", "m x k x n", "op", "ours*", "openblas*", "ratio", pairs
	printf "%-16s %-3s | %7.1f %8.1f %7.2fx\n", p[2], p[3], o, b, r
}' pairs="${PAIRS:-6}"
	echo "load average after the paired runs: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
