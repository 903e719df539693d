# script_env.sh: what the shell tests that use Python or ONNX Runtime share. Source it, then:
#   python=$(find_python "import onnx, numpy" WHAT) || exit 1
#   run_ort=$(ort_available SOURCE_DIR WHAT)
# WHAT names the calling test in messages.

# The first interpreter that runs `$1`: Debian's packages (python3-onnx, python3-numpy) install
# into the system interpreter, which another python3 on PATH may hide.
find_python() {
  local p
  for p in /usr/bin/python3 python3; do
    if "$p" -c "$1" 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "$2: no python3 that can '$1'; run scripts/setup" >&2
  return 1
}

# 1 when node and bench/peer's onnxruntime-node are installed, else 0 (with a note on stderr).
ort_available() {
  if command -v node >/dev/null 2>&1 && [ -d "$1/bench/peer/node_modules/onnxruntime-node" ]; then
    echo 1
  else
    echo "$2: bench/peer/node_modules is absent (run scripts/setup): skipping the ONNX Runtime runs" >&2
    echo 0
  fi
}
