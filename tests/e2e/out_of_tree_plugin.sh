#!/usr/bin/env bash
# The install round trip: install lmrun from a built tree, build every example plugin (examples/:
# a scheduler, a model, a callback, a sampler) from the *installed* copy against the *installed*
# CMake package, with no build type, run their conformance tests, and check that the installed
# lmrun lists, describes and runs each plugin from its folder, and refuses an experiment without it.
#
#   bash tests/e2e/out_of_tree_plugin.sh SOURCE_DIR BINARY_DIR     (ctest runs it so, label e2e)
#
# BINARY_DIR must be built (lmrun and its plugins): `cmake --install` copies what is there.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 SOURCE_DIR BINARY_DIR" >&2
  exit 2
fi
SRC=$(cd "$1" && pwd -P)
BIN=$(cd "$2" && pwd -P)

# Canonical, so that paths lmrun prints compare equal to ours.
TMP=$(cd "$(mktemp -d -t lmrun-oot.XXXXXX)" && pwd -P)
trap 'rm -rf "$TMP"' EXIT

PREFIX=$TMP/prefix
BUILD=$TMP/build
LMRUN=$PREFIX/bin/lmrun
EXAMPLES=$PREFIX/share/lmrun/examples

# The examples: folder, kind, plugin name, source file. Each builds into $BUILD/<folder>.
EXAMPLE_FOLDERS=(out_of_tree_plugin mlp_lm loss_ema eta_sampler)
declare -A KIND=([out_of_tree_plugin]=scheduler [mlp_lm]=model [loss_ema]=callback [eta_sampler]=sampler)
declare -A NAME=([out_of_tree_plugin]=inverse_sqrt [mlp_lm]=mlp_lm [loss_ema]=loss_ema [eta_sampler]=eta)
declare -A SOURCE=([out_of_tree_plugin]=inverse_sqrt.cpp [mlp_lm]=mlp_lm.cpp [loss_ema]=loss_ema.cpp
                   [eta_sampler]=eta.cpp)

fail() {
  echo "FAIL: $1" >&2
  if [[ $# -gt 1 && -f $2 ]]; then
    echo "---- $2 (last 40 lines)" >&2
    tail -n 40 "$2" >&2
  fi
  exit 1
}
step() { echo "== $*"; }

# Only the folders this script names: nothing from the caller's environment.
unset LMRUN_PLUGIN_PATH

# ---------------------------------------------------------------------------------------------
step "install $BIN into $PREFIX"
cmake --install "$BIN" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 ||
  fail "cmake --install $BIN failed (is the tree built? cmake --build $BIN)" "$TMP/install.log"

[[ -x $LMRUN ]] || fail "the install has no $LMRUN"
for header in plugin.h testing/conformance.h testing/plugin_file.h; do
  [[ -f $PREFIX/include/lmrun/$header ]] || fail "the install has no SDK header include/lmrun/$header"
done
CONFIG=$(find "$PREFIX" -name lmrunConfig.cmake -print -quit)
[[ -n $CONFIG ]] || fail "the install has no lmrunConfig.cmake"
for file in lmrunConfigVersion.cmake lmrunTargets.cmake LmrunPlugin.cmake; do
  [[ -f $(dirname "$CONFIG")/$file ]] || fail "the install has no $file beside $CONFIG"
done
if grep -v '^[[:space:]]*#' "$CONFIG" | grep -q "LMRUN_PLUGIN_OUTPUT_DIR"; then
  fail "$CONFIG mentions LMRUN_PLUGIN_OUTPUT_DIR: out-of-tree plugins would build into lmrun's folder"
fi
[[ -n $(find "$PREFIX" -path "*/lmrun/plugins/lmrun-*.so" -print -quit) ]] ||
  fail "the install has no built-in plugins under <libdir>/lmrun/plugins"
for file in conformance_main.cpp model_suite.cpp tokenizer_suite.cpp sampler_suite.cpp \
            callback_suite.cpp support.h; do
  [[ -f $PREFIX/share/lmrun/testing/$file ]] || fail "the install has no share/lmrun/testing/$file"
done
for readme in "$SRC"/plugins/*/*/README.md; do
  relative=${readme#"$SRC"/plugins/}
  [[ -f $PREFIX/share/lmrun/plugins/$relative ]] ||
    fail "the install has no share/lmrun/plugins/$relative"
done
for folder in "${EXAMPLE_FOLDERS[@]}"; do
  for file in CMakeLists.txt README.md example.toml "${SOURCE[$folder]}"; do
    [[ -f $EXAMPLES/$folder/$file ]] || fail "the install has no share/lmrun/examples/$folder/$file"
  done
done
[[ -f $EXAMPLES/CMakeLists.txt ]] || fail "the install has no share/lmrun/examples/CMakeLists.txt"

# ---------------------------------------------------------------------------------------------
step "build the installed examples against the installed package, with no build type"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# The compiler lmrun was built with: the plugins must share its C++ ABI.
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BIN/CMakeCache.txt" 2>/dev/null || true)
compiler_arg=()
if [[ -n $compiler ]]; then compiler_arg=(-DCMAKE_CXX_COMPILER="$compiler"); fi

cmake -S "$EXAMPLES" -B "$BUILD" "${generator[@]}" "${compiler_arg[@]}" \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$TMP/configure.log" 2>&1 ||
  fail "configuring the examples against $PREFIX failed" "$TMP/configure.log"
found=$(sed -n 's/^lmrun_DIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
[[ $found == "$PREFIX"/* ]] ||
  fail "the examples found lmrun at '$found', not in the install $PREFIX" "$TMP/configure.log"

cmake --build "$BUILD" >"$TMP/build.log" 2>&1 || fail "building the examples failed" "$TMP/build.log"
if grep -q "warning:" "$TMP/build.log"; then fail "the examples build with warnings" "$TMP/build.log"; fi
for folder in "${EXAMPLE_FOLDERS[@]}"; do
  so=$BUILD/$folder/lmrun-${NAME[$folder]}.so
  [[ -f $so ]] || fail "no $so: lmrun_add_plugin() must build into the caller's build folder"
  # No build type set: lmrun_add_plugin() compiles with the Release flags all the same.
  command=$(grep -F "\"command\"" "$BUILD/compile_commands.json" | grep -F "/$folder/${SOURCE[$folder]}" || true)
  [[ -n $command ]] || fail "compile_commands.json has no command for $folder/${SOURCE[$folder]}"
  grep -Eq -- ' -O[1-3s]( |$)' <<<"$command" ||
    fail "$folder/${SOURCE[$folder]} compiles without optimisation when no build type is set: $command"
done

step "a build type the user sets is kept (Debug, eta_sampler alone)"
cmake -S "$EXAMPLES/eta_sampler" -B "$TMP/debug" "${generator[@]}" "${compiler_arg[@]}" \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  >"$TMP/configure-debug.log" 2>&1 ||
  fail "configuring examples/eta_sampler alone failed" "$TMP/configure-debug.log"
command=$(grep -F "\"command\"" "$TMP/debug/compile_commands.json" | grep -F "/eta.cpp" || true)
grep -Eq -- ' -g( |$)' <<<"$command" || fail "the Debug build of eta.cpp has no -g: $command"
if grep -Eq -- ' -O[1-3s]( |$)' <<<"$command"; then
  fail "lmrun_add_plugin() overrode the Debug build type: $command"
fi

# ---------------------------------------------------------------------------------------------
step "the examples' conformance tests (ctest in $BUILD)"
ctest --test-dir "$BUILD" -V >"$TMP/ctest.log" 2>&1 ||
  fail "the examples' conformance tests failed" "$TMP/ctest.log"
for test in conformance.mlp_lm conformance.loss_ema conformance.eta; do
  grep -Eq "Test +#[0-9]+: $test \.+ +Passed" "$TMP/ctest.log" ||
    fail "ctest did not run and pass $test" "$TMP/ctest.log"
done
# The suites ran the plugins' checks, not an empty selection.
for check in ModelConformance.DecodeMatchesForward/mlp_lm ModelConformance.SelectRows/mlp_lm \
             CallbackConformance.StateRoundTrip/loss_ema SamplerConformance.Deterministic/eta; do
  grep -q "\[       OK \] Plugin/$check " "$TMP/ctest.log" ||
    fail "the conformance run did not pass Plugin/$check" "$TMP/ctest.log"
done

# ---------------------------------------------------------------------------------------------
PLUGIN_PATH=""
for folder in "${EXAMPLE_FOLDERS[@]}"; do PLUGIN_PATH+="${PLUGIN_PATH:+:}$BUILD/$folder"; done
step "lmrun plugins with LMRUN_PLUGIN_PATH=$PLUGIN_PATH"
LMRUN_PLUGIN_PATH=$PLUGIN_PATH "$LMRUN" plugins >"$TMP/plugins.out" 2>&1 ||
  fail "lmrun plugins exited non-zero" "$TMP/plugins.out"
for folder in "${EXAMPLE_FOLDERS[@]}"; do
  kind=${KIND[$folder]} name=${NAME[$folder]}
  # The kind's section, up to the next kind's heading.
  awk -v kind="$kind" '$0 == kind {on = 1; next} /^[a-z]/ {on = 0} on' "$TMP/plugins.out" \
    >"$TMP/section.out"
  grep -Eq "^ +$name +$name 0\.1\.0 +$BUILD/$folder/lmrun-$name\.so\$" "$TMP/section.out" ||
    fail "lmrun plugins does not list $kind $name from $BUILD/$folder" "$TMP/plugins.out"
done
# The built-in ones come from the install, not from the build tree.
awk '/^scheduler$/ {on = 1; next} /^[a-z]/ {on = 0} on' "$TMP/plugins.out" >"$TMP/schedulers.out"
grep -Eq "^ +cosine .* $PREFIX/lib[^ ]*/lmrun/plugins/lmrun-[a-z_]+\.so\$" "$TMP/schedulers.out" ||
  fail "the installed lmrun does not load its built-in schedulers from $PREFIX" "$TMP/plugins.out"
if grep -q "warning" "$TMP/plugins.out"; then fail "lmrun plugins warns" "$TMP/plugins.out"; fi

# ---------------------------------------------------------------------------------------------
SCHEDULER_DIR=$BUILD/out_of_tree_plugin
SO=$SCHEDULER_DIR/lmrun-inverse_sqrt.so
step "lmrun describe inverse_sqrt"
"$LMRUN" describe inverse_sqrt --plugin-dir "$SCHEDULER_DIR" >"$TMP/describe.out" 2>&1 ||
  fail "lmrun describe inverse_sqrt exited non-zero" "$TMP/describe.out"
grep -q "^scheduler\.inverse_sqrt: " "$TMP/describe.out" ||
  fail "describe does not name scheduler.inverse_sqrt" "$TMP/describe.out"
grep -q "$SO" "$TMP/describe.out" || fail "describe does not name the file $SO" "$TMP/describe.out"
grep -Eq "^ +warmup_steps +int += 4000\$" "$TMP/describe.out" ||
  fail "describe does not print warmup_steps (int, default 4000)" "$TMP/describe.out"
grep -Eq "^ +min_lr +float += 0\.0\$" "$TMP/describe.out" ||
  fail "describe does not print min_lr (float, default 0.0)" "$TMP/describe.out"

# ---------------------------------------------------------------------------------------------
# A short run of each example's experiment (the installed copy), with its plugin's folder only.
SHORT=(--set train.max_steps=3 --set train.eval_batches=1 --set generate.max_new_tokens=8)
# The cosine schedule's warmup must fit in the 3 steps (lmrun refuses a longer one).
SHORT_COSINE=("${SHORT[@]}" --set scheduler.warmup_steps=1)
run_example() {  # folder [more lmrun arguments] -> $TMP/run-<folder>
  local folder=$1 status=0
  shift
  local toml=$EXAMPLES/$folder/example.toml run=$TMP/run-$folder
  step "run share/lmrun/examples/$folder/example.toml with LMRUN_PLUGIN_PATH=$BUILD/$folder"
  (cd "$SRC" && LMRUN_PLUGIN_PATH=$BUILD/$folder "$LMRUN" "$toml" --set experiment.out_dir="$run" \
    "$@") >"$TMP/run-$folder.out" 2>&1 || status=$?
  [[ $status -eq 0 ]] || fail "running $folder/example.toml exited $status, expected 0" \
    "$TMP/run-$folder.out"
  grep -q "^type = \"${NAME[$folder]}\"" "$run/config.toml" ||
    fail "$run/config.toml does not hold type = \"${NAME[$folder]}\"" "$run/config.toml"
  grep -q '"steps": 3' "$run/summary.json" ||
    fail "the $folder run did not train 3 steps" "$TMP/run-$folder.out"
  [[ -s $run/samples.txt ]] || fail "the $folder run wrote no samples" "$TMP/run-$folder.out"
}

run_example out_of_tree_plugin "${SHORT[@]}"
grep -q "^warmup_steps = 100" "$TMP/run-out_of_tree_plugin/config.toml" ||
  fail "the run's config.toml does not hold the experiment's warmup_steps = 100" \
    "$TMP/run-out_of_tree_plugin/config.toml"

run_example mlp_lm "${SHORT_COSINE[@]}"  # trained with the model, and its samples drawn by its decode()

run_example loss_ema "${SHORT_COSINE[@]}"
[[ $(grep -c '"loss_ema"' "$TMP/run-loss_ema/metrics.jsonl") -ge 3 ]] ||
  fail "metrics.jsonl does not hold loss_ema at each of the 3 steps" "$TMP/run-loss_ema/metrics.jsonl"
head -n 1 "$TMP/run-loss_ema/metrics.csv" | grep -q "loss_ema" ||
  fail "metrics.csv has no loss_ema column" "$TMP/run-loss_ema/metrics.csv"

run_example eta_sampler "${SHORT_COSINE[@]}"  # its samples drawn through temperature, then eta

# ---------------------------------------------------------------------------------------------
step "run the scheduler's example.toml without the plugin folder"
status=0
(cd "$SRC" && "$LMRUN" "$EXAMPLES/out_of_tree_plugin/example.toml" \
  --set experiment.out_dir="$TMP/run-without" "${SHORT[@]}") >"$TMP/without.out" 2>&1 || status=$?
[[ $status -eq 1 ]] || fail "without the plugin folder the run exited $status, expected 1" "$TMP/without.out"
grep -q "unknown scheduler 'inverse_sqrt'" "$TMP/without.out" ||
  fail "without the plugin folder the error does not name the unknown scheduler 'inverse_sqrt'" "$TMP/without.out"
[[ ! -e $TMP/run-without ]] || fail "the refused run still created its run folder $TMP/run-without"

echo "PASS"
