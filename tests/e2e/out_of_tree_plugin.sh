#!/usr/bin/env bash
# The install round trip: install lmrun from a built tree, build examples/out_of_tree_plugin against
# the *installed* CMake package, and check that the installed lmrun lists, describes and runs the
# plugin from that folder, and refuses the experiment without it.
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
NAME=inverse_sqrt
SO=$BUILD/lmrun-$NAME.so
EXAMPLE=examples/out_of_tree_plugin/example.toml

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
[[ -f $PREFIX/include/lmrun/plugin.h ]] || fail "the install has no SDK header include/lmrun/plugin.h"
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

# ---------------------------------------------------------------------------------------------
step "build examples/out_of_tree_plugin against the installed package"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# The compiler lmrun was built with: the plugin must share its C++ ABI.
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BIN/CMakeCache.txt" 2>/dev/null || true)
compiler_arg=()
if [[ -n $compiler ]]; then compiler_arg=(-DCMAKE_CXX_COMPILER="$compiler"); fi

cmake -S "$SRC/examples/out_of_tree_plugin" -B "$BUILD" "${generator[@]}" "${compiler_arg[@]}" \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release >"$TMP/configure.log" 2>&1 ||
  fail "configuring the example against $PREFIX failed" "$TMP/configure.log"
found=$(sed -n 's/^lmrun_DIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
[[ $found == "$PREFIX"/* ]] ||
  fail "the example found lmrun at '$found', not in the install $PREFIX" "$TMP/configure.log"

cmake --build "$BUILD" >"$TMP/build.log" 2>&1 || fail "building the example failed" "$TMP/build.log"
if grep -q "warning:" "$TMP/build.log"; then fail "the example builds with warnings" "$TMP/build.log"; fi
[[ -f $SO ]] || fail "no $SO: lmrun_add_plugin() must build into the caller's build folder"

# ---------------------------------------------------------------------------------------------
step "lmrun plugins --plugin-dir $BUILD"
"$LMRUN" plugins --plugin-dir "$BUILD" >"$TMP/plugins.out" 2>&1 ||
  fail "lmrun plugins --plugin-dir $BUILD exited non-zero" "$TMP/plugins.out"
# The scheduler section, up to the next kind's heading.
awk '/^scheduler$/ {on = 1; next} /^[a-z]/ {on = 0} on' "$TMP/plugins.out" >"$TMP/schedulers.out"
grep -Eq "^ +$NAME +$NAME 0\.1\.0 +$SO\$" "$TMP/schedulers.out" ||
  fail "lmrun plugins does not list scheduler $NAME from $SO" "$TMP/plugins.out"
# The built-in ones come from the install, not from the build tree.
grep -Eq "^ +cosine .* $PREFIX/lib[^ ]*/lmrun/plugins/lmrun-[a-z_]+\.so\$" "$TMP/schedulers.out" ||
  fail "the installed lmrun does not load its built-in schedulers from $PREFIX" "$TMP/plugins.out"
if grep -q "warning" "$TMP/plugins.out"; then fail "lmrun plugins warns" "$TMP/plugins.out"; fi

# ---------------------------------------------------------------------------------------------
step "lmrun describe $NAME"
"$LMRUN" describe "$NAME" --plugin-dir "$BUILD" >"$TMP/describe.out" 2>&1 ||
  fail "lmrun describe $NAME exited non-zero" "$TMP/describe.out"
grep -q "^scheduler\.$NAME: " "$TMP/describe.out" || fail "describe does not name scheduler.$NAME" "$TMP/describe.out"
grep -q "$SO" "$TMP/describe.out" || fail "describe does not name the file $SO" "$TMP/describe.out"
grep -Eq "^ +warmup_steps +int += 4000\$" "$TMP/describe.out" ||
  fail "describe does not print warmup_steps (int, default 4000)" "$TMP/describe.out"
grep -Eq "^ +min_lr +float += 0\.0\$" "$TMP/describe.out" ||
  fail "describe does not print min_lr (float, default 0.0)" "$TMP/describe.out"

# ---------------------------------------------------------------------------------------------
step "run $EXAMPLE with LMRUN_PLUGIN_PATH=$BUILD"
status=0
# A short run: the plugin's schedule drives real optimizer steps.
SHORT=(--set train.max_steps=3 --set train.eval_batches=1 --set generate.max_new_tokens=8)
(cd "$SRC" && LMRUN_PLUGIN_PATH=$BUILD "$LMRUN" "$EXAMPLE" --set experiment.out_dir="$TMP/run" "${SHORT[@]}") \
  >"$TMP/run.out" 2>&1 || status=$?
[[ $status -eq 0 ]] || fail "running $EXAMPLE with the plugin exited $status, expected 0" "$TMP/run.out"
[[ -f $TMP/run/config.toml ]] || fail "the run wrote no $TMP/run/config.toml" "$TMP/run.out"
grep -q "^type = \"$NAME\"" "$TMP/run/config.toml" ||
  fail "$TMP/run/config.toml does not hold type = \"$NAME\"" "$TMP/run/config.toml"
grep -q "^warmup_steps = 100" "$TMP/run/config.toml" ||
  fail "$TMP/run/config.toml does not hold the experiment's warmup_steps = 100" "$TMP/run/config.toml"
grep -q '"steps": 3' "$TMP/run/summary.json" ||
  fail "the run did not train 3 steps with the plugin's schedule" "$TMP/run.out"

# ---------------------------------------------------------------------------------------------
step "run $EXAMPLE without the plugin folder"
status=0
(cd "$SRC" && "$LMRUN" "$EXAMPLE" --set experiment.out_dir="$TMP/run-without" "${SHORT[@]}") \
  >"$TMP/without.out" 2>&1 || status=$?
[[ $status -eq 1 ]] || fail "without the plugin folder the run exited $status, expected 1" "$TMP/without.out"
grep -q "unknown scheduler '$NAME'" "$TMP/without.out" ||
  fail "without the plugin folder the error does not name the unknown scheduler '$NAME'" "$TMP/without.out"
[[ ! -e $TMP/run-without ]] || fail "the refused run still created its run folder $TMP/run-without"

echo "PASS"
