#!/usr/bin/env bash
# Runs every benchmark of bench/ and the thread-setting matrix, and writes one table.
#
#   scripts/bench.sh                 # results in bench-results/<time>/: results.md, *.json, logs
#   scripts/bench.sh --quick         # shorter thread matrix (one round)
#
# Each program checks its result before timing and prints "ratio:" lines measured in one run;
# results.md collects those lines and the thread matrix. Run it on an otherwise idle machine:
# absolute times on shared 2-core machines move by 20% from one minute to the next, ratios less.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
[[ "${1:-}" == "--quick" ]] && ROUNDS=1

scripts/setup.sh >/dev/null
BIN=${BUILD_DIR:-build}/bin
OUT=bench-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
echo "writing $OUT"

{
  echo "# lmrun benchmarks, $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
       "LibTorch $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo '?')"
  echo
  echo "## Ratios (each measured within one program run)"
  echo
} > "$OUT/results.md"

for program in bench_train bench_generate bench_host bench_tokenizer bench_startup; do
  echo "== $program"
  # The ratio reporters print through a colouring console reporter: strip its escapes.
  "$BIN/$program" --benchmark_out="$OUT/$program.json" --benchmark_out_format=json \
    2>&1 | sed 's/\x1b\[[0-9;]*m//g' | tee "$OUT/$program.log"
  grep '^ratio:' "$OUT/$program.log" | sed 's/^ratio: /- /' >> "$OUT/results.md" || true
done

# ---------------------------------------------------------------------------------------------
# Thread settings: OpenMP (LibTorch's intra-op) threads x OpenBLAS threads x OpenBLAS build.
# The pthread build is the system's; the OpenMP build is picked with LD_LIBRARY_PATH when
# libopenblas0-openmp is installed. Each cell: median ms/step of gpt_tiny's steps 60..150.

OPENMP_BLAS=/usr/lib/x86_64-linux-gnu/openblas-openmp
cells=("pthread 1 2" "pthread 1 1" "pthread 2 1" "pthread 2 2")
[[ -e "$OPENMP_BLAS/libblas.so.3" ]] && cells+=("openmp 1 -" "openmp 2 -")

step_ms() {  # build omp_threads openblas_threads -> median ms/step
  local build=$1 omp=$2 blas=$3 env=()
  [[ "$build" == openmp ]] && env+=("LD_LIBRARY_PATH=$OPENMP_BLAS")
  [[ "$blas" != - ]] && env+=("OPENBLAS_NUM_THREADS=$blas")
  env ${env[@]+"${env[@]}"} "$BIN/lmrun" experiments/gpt_tiny.toml --force \
    --set experiment.out_dir="\"$OUT/threads-run\"" --set train.max_steps=150 \
    --set train.eval_interval=0 --set train.log_interval=10 --set train.threads="$omp" \
    --set generate.max_new_tokens=0 2>&1 |
    awk -F'|' '/^step/ { split($1, s, /[ \/]+/); if (s[2] + 0 > 60) { gsub(/[^0-9.]/, "", $5); print $5 } }' |
    sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

declare -A results
for ((round = 1; round <= ROUNDS; round++)); do  # rounds interleave the cells against drift
  for cell in "${cells[@]}"; do
    ms=$(step_ms $cell)
    echo "threads: OpenBLAS $cell -> $ms ms/step (round $round)"
    results[$cell]+="$ms "
  done
done

{
  echo
  echo "## Thread settings (gpt_tiny, median ms/step of steps 60-150, $ROUNDS round(s))"
  echo
  echo "| OpenBLAS build | OpenMP threads | OpenBLAS threads | ms/step (each round) |"
  echo "|---|---|---|---|"
  for cell in "${cells[@]}"; do
    read -r build omp blas <<< "$cell"
    [[ "$blas" == - ]] && blas="(shares OpenMP's)"
    echo "| $build | $omp | $blas | ${results[$cell]} |"
  done
} >> "$OUT/results.md"
rm -rf "$OUT/threads-run"
echo
cat "$OUT/results.md"
