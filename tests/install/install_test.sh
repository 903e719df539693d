#!/usr/bin/env bash
# Installs tandem from an existing build into a temporary prefix and uses it the way an
# application would (docs/install.md):
#   - the installed files: headers, libtandem.so.<abi> with its SONAME, libtandem.a, the CLI,
#     the CMake package and tandem.pc;
#   - the exports of libtandem.so: only the C ABI (tandem_* functions of tandem/tandem.h) and
#     the C++ API of the public headers (src/libtandem.map), every C function and every
#     namespace-level C++ function among them;
#   - examples/ built with find_package(tandem) (shared, and hello_c static) and with
#     pkg-config, each run on the PaddleOCR direction classifier: the model's input, an output
#     of shape [1,2] whose softmax sums to 1, and the same numbers from every build.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
model=$src/models/ch_ppocr_mobile_v2.0_cls_infer.onnx
[ -s "$model" ] || { echo "FAIL: $model is missing (scripts/setup fetches it)"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

echo "== install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"

abi=$(sed -n 's/^#define TANDEM_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$src/include/tandem/tandem.h")
version=$(sed -n 's/^project(tandem VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
if [ -z "$abi" ] || [ -z "$version" ]; then echo "FAIL: no ABI version or project version found"; exit 1; fi
pc=$(find "$prefix" -name tandem.pc)
[ -n "$pc" ] || { echo "FAIL: tandem.pc not installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
for f in bin/tandem include/tandem/tandem.h include/tandem/engine.h; do
  [ -f "$prefix/$f" ] || fail "$f not installed"
done
for h in "$src"/include/tandem/*.h; do
  [ -f "$prefix/include/tandem/$(basename "$h")" ] || fail "header $(basename "$h") not installed"
done
[ -f "$libdir/libtandem.so.$version" ] || fail "libtandem.so.$version not installed"
[ "$(readlink "$libdir/libtandem.so.$abi")" = "libtandem.so.$version" ] || fail "libtandem.so.$abi is not a link to libtandem.so.$version"
[ "$(readlink "$libdir/libtandem.so")" = "libtandem.so.$abi" ] || fail "libtandem.so is not a link to libtandem.so.$abi"
[ -f "$libdir/libtandem.a" ] || fail "libtandem.a not installed"
for f in tandem-config.cmake tandem-config-version.cmake tandem-targets.cmake tandem-static-targets.cmake; do
  [ -f "$libdir/cmake/tandem/$f" ] || fail "lib/cmake/tandem/$f not installed"
done
soname=$(readelf -d "$libdir/libtandem.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ "$soname" = "libtandem.so.$abi" ] || fail "SONAME is '$soname', expected libtandem.so.$abi"
grep -q "$version" <<<"$("$prefix/bin/tandem" --version)" || fail "the installed CLI does not run or report $version"

echo "== exports of libtandem.so"
# The C functions declared in tandem/tandem.h, and the names of the classes, structs and
# functions the C++ headers declare at namespace level: an exported C++ symbol must belong to
# one of those.
c_functions=$(grep -ohE '^[A-Za-z_][A-Za-z0-9_ *]*[* ]tandem_[a-z0-9_]+\(' "$src/include/tandem/tandem.h" |
              grep -oE 'tandem_[a-z0-9_]+\($' | tr -d '(' | sort -u)
cpp_headers=()
for h in "$src"/include/tandem/*.h; do [ "$(basename "$h")" = tandem.h ] || cpp_headers+=("$h"); done
cpp_names=$( (grep -hoE '^(class|struct) (\[\[nodiscard\]\] )?[A-Za-z0-9_]+' "${cpp_headers[@]}" | awk '{print $NF}'
              grep -hE '^[A-Za-z]' "${cpp_headers[@]}" | grep -vE '^(template|inline|namespace|enum|using|class|struct)\b' |
                grep -oE '[A-Za-z0-9_]+\(' | sed -n 's/($//p') | sort -u)
echo "$c_functions" >"$tmp/c_functions"
echo "$cpp_names" >"$tmp/cpp_names"
nm -D --defined-only "$libdir/libtandem.so.$version" | awk '{print $3}' | sort -u >"$tmp/exports"
c++filt <"$tmp/exports" >"$tmp/exports.demangled"
offenders=0
while read -r sym; do
  ok=0
  if [[ $sym =~ ^tandem_[a-z0-9_]+$ ]]; then
    grep -qx "$sym" "$tmp/c_functions" && ok=1
  elif [[ $sym =~ ^((typeinfo\ name\ for|typeinfo\ for|vtable\ for)\ )?tandem::([A-Za-z0-9_]+) ]]; then
    name=${BASH_REMATCH[3]}
    # Implementation details nested in a public class (Impl) are internals too.
    if grep -qx "$name" "$tmp/cpp_names" && [[ $sym != *::Impl* ]] && [[ $sym != *"(anonymous namespace)"* ]]; then ok=1; fi
  fi
  if ((!ok)); then
    echo "  not public: $sym"
    offenders=$((offenders + 1))
  fi
done <"$tmp/exports.demangled"
exported=$(wc -l <"$tmp/exports.demangled")
echo "$exported exported symbols, $offenders outside the public API"
((offenders == 0)) || fail "$offenders exported symbols outside the public API (listed above)"
while read -r f; do
  grep -qx "$f" "$tmp/exports" || fail "C function $f is not exported"
done <"$tmp/c_functions"
# Every function the C++ headers declare at namespace level (a lowercase name) is exported.
while read -r f; do
  [[ $f =~ ^[a-z] ]] || continue
  grep -qE "^tandem::$f(\[|\()" "$tmp/exports.demangled" || fail "C++ function tandem::$f is not exported"
done <"$tmp/cpp_names"
for s in 'tandem::Engine::create(' 'tandem::OnnxModel::load(' 'tandem::Status::to_string' \
         'tandem::Tensor::Tensor(' 'typeinfo for tandem::PreparedModel'; do
  grep -qF "$s" "$tmp/exports.demangled" || fail "'$s' is not exported"
done

# hello_c and hello_cpp print the same inputs and numbers; each run is checked, and their
# "first=" values are collected to compare across builds.
: >"$tmp/firsts"
check_run() {  # check_run LABEL PROGRAM
  local label=$1 out
  if ! out=$("${@:2}" "$model" x=1x3x48x192 7 2>&1); then
    echo "$out"
    fail "$label failed"
    return
  fi
  printf '%s\n' "$out" | while IFS= read -r l; do echo "  $label: $l"; done
  # The classifier's input x is float32 [batch,3,height,width] with symbolic dims.
  # Searched as a here-string: with pipefail, `echo | grep -q` fails at random when grep
  # stops reading before echo has written every line.
  grep -qE '^input 0: x float32 ?\[[^],]+,3,[^],]+,[^],]+\]$' <<<"$out" ||
    fail "$label: no 'input 0: x float32 [N,3,H,W]' line"
  grep -qE '^backend: cpu$' <<<"$out" || fail "$label: the cpu backend did not answer"
  local line
  line=$(echo "$out" | grep -E '^output 0: ' || true)
  [[ $line =~ \ float32\ \[1,2\]\ checksum=([-0-9.]+)\ first=([-0-9.]+)$ ]] ||
    { fail "$label: output 0 is not a float32 [1,2] with a checksum: '$line'"; return; }
  awk -v s="${BASH_REMATCH[1]}" 'BEGIN { exit !(s > 0.9999 && s < 1.0001) }' ||
    fail "$label: the softmax output sums to ${BASH_REMATCH[1]}, not 1"
  echo "$label ${BASH_REMATCH[2]}" >>"$tmp/firsts"
}

echo "== examples with find_package(tandem)"
cmake -S "$src/examples" -B "$tmp/ex" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/ex.log" 2>&1 ||
  { cat "$tmp/ex.log"; fail "configuring examples/ with find_package"; }
if cmake --build "$tmp/ex" >>"$tmp/ex.log" 2>&1; then
  grep -q "NEEDED.*\[libtandem.so.$abi\]" <<<"$(readelf -d "$tmp/ex/hello_c/hello_c")" ||
    fail "hello_c does not link libtandem.so.$abi"
  check_run cmake/hello_c "$tmp/ex/hello_c/hello_c"
  check_run cmake/hello_cpp "$tmp/ex/hello_cpp/hello_cpp"
else
  cat "$tmp/ex.log"; fail "building examples/ with find_package"
fi

echo "== hello_c with find_package(tandem), static library"
if ! { cmake -S "$src/examples" -B "$tmp/ex-static" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
           -DTANDEM_EXAMPLES_STATIC=ON >"$tmp/ex-static.log" 2>&1 &&
         cmake --build "$tmp/ex-static" --target hello_c >>"$tmp/ex-static.log" 2>&1; }; then
  cat "$tmp/ex-static.log"
  fail "building hello_c against tandem::tandem_static"
fi
if [ -x "$tmp/ex-static/hello_c/hello_c" ]; then
  grep -q 'NEEDED.*libtandem' <<<"$(readelf -d "$tmp/ex-static/hello_c/hello_c")" && fail "the static hello_c needs libtandem.so"
  check_run cmake-static/hello_c "$tmp/ex-static/hello_c/hello_c"
fi

echo "== examples with pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
if cflags=$(pkg-config --cflags tandem) && libs=$(pkg-config --libs tandem); then
  # shellcheck disable=SC2086  # flags are words
  cc -std=c11 -O2 $cflags "$src/examples/hello_c/hello_c.c" $libs -o "$tmp/hello_c_pc" ||
    fail "compiling hello_c with pkg-config"
  # shellcheck disable=SC2086
  c++ -std=c++20 -O2 $cflags "$src/examples/hello_cpp/hello_cpp.cpp" $libs -o "$tmp/hello_cpp_pc" ||
    fail "compiling hello_cpp with pkg-config"
  [ -x "$tmp/hello_c_pc" ] && LD_LIBRARY_PATH=$libdir check_run pkg-config/hello_c "$tmp/hello_c_pc"
  [ -x "$tmp/hello_cpp_pc" ] && LD_LIBRARY_PATH=$libdir check_run pkg-config/hello_cpp "$tmp/hello_cpp_pc"
else
  fail "pkg-config does not know tandem"
fi

runs=$(wc -l <"$tmp/firsts")
((runs == 5)) || fail "$runs of 5 example runs gave an output"
if ((runs > 1)); then
  awk 'NR == 1 { ref = $2; label = $1 } { d = $2 - ref; if (d < 0) d = -d; if (d > 1e-4) { print "FAIL: " $1 " first=" $2 " differs from " label " first=" ref; bad = 1 } } END { exit bad }' \
    "$tmp/firsts" || fail "the example builds disagree"
fi

if ((failures)); then
  echo "install_test: $failures failure(s)"
  exit 1
fi
echo "install_test: ok"
