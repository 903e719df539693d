#!/usr/bin/env bash
# serve_cli_test.sh: the `tandem serve` command itself (src/cli/serve.cpp).
#   bash tests/server/serve_cli_test.sh REPO_ROOT TANDEM_BINARY
# Checks: bad options (a cache folder that cannot be made among them) and a missing repository
# give one line and exit non-zero; --cache-dir reaches the models' engine; the ready file
# appears with the bound ports (port 0: any free port; -1: off); the server becomes ready; a
# second server on a taken port fails with one line and exit 1; SIGHUP makes it load a model
# added since it started; SIGTERM and SIGINT end the server with exit 0 after its "stopped"
# line; SIGTERM while requests wait in a model's queue answers every one of them (200) within
# the grace period and exits 0; with --grace-seconds 0, requests still queued are cut off (503)
# and the exit code is 1. The log has each version's READY line and the server's (text and
# --log-format json). Servers bind 127.0.0.1 only and are killed on any exit of this script;
# the whole test gives up after 120 s.
set -euo pipefail

root="$(cd "${1:?usage: serve_cli_test.sh REPO_ROOT TANDEM_BINARY}" && pwd)"
tandem="${2:?usage: serve_cli_test.sh REPO_ROOT TANDEM_BINARY}"
model="$root/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"

source "$root/tests/lib/server_env.sh"
server_env_init serve_cli_test 120

repo="$work/repo"
mkdir -p "$repo/cls/1"
cp "$model" "$repo/cls/1/model.onnx"
echo '{"input_shapes": {"x": [1, 3, 48, 192]}}' >"$repo/cls/config.json"

# Runs `tandem serve ARGS...` expecting a quick failure: exit code $1, exactly one stderr line.
expect_failure() {
  local want="$1" what="$2"
  shift 2
  local rc=0
  timeout 30 "$tandem" serve "$@" >"$work/out" 2>"$work/err" || rc=$?
  local lines
  lines=$(wc -l <"$work/err")
  if [[ "$rc" == "$want" && "$lines" == 1 ]]; then pass "$what: exit $rc, '$(cat "$work/err")'"
  else fail "$what: exit $rc (want $want), $lines stderr lines: $(cat "$work/err")"; fi
}

expect_failure 1 "missing repository" --model-repository "$work/nope" --http-port 0 --grpc-port -1 --metrics-port -1
expect_failure 2 "bad port" --model-repository "$repo" --http-port 70000
expect_failure 2 "unknown backend" --model-repository "$repo" --http-port 0 --backend cpu,warp9
expect_failure 2 "bad threads" --model-repository "$repo" --http-port 0 --threads 0
expect_failure 2 "bad handler threads" --model-repository "$repo" --http-port 0 --handler-threads -1
expect_failure 2 "bad JSON decode threads" --model-repository "$repo" --http-port 0 --json-decode-threads -2
expect_failure 2 "bad log format" --model-repository "$repo" --http-port 0 --log-format xml
expect_failure 2 "bad model control" --model-repository "$repo" --http-port 0 --model-control some
expect_failure 1 "unknown model to load" --model-repository "$repo" --http-port 0 --grpc-port -1 --metrics-port -1 \
  --load-model no-such-model
touch "$work/a-file"
expect_failure 2 "cache folder under a file" --model-repository "$repo" --http-port 0 --cache-dir "$work/a-file/cache"

# Starts a server in the background with the given extra args; sets server_pid, http, grpc, metrics.
start_server() {
  rm -f "$work/ready.json"
  "$tandem" serve --model-repository "$repo" --http-port 0 --ready-file "$work/ready.json" "$@" \
    >"$work/serve.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do
    [[ -f "$work/ready.json" ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -f "$work/ready.json" ]] || { fail "no ready file: $(cat "$work/serve.log")"; return 1; }
  http=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['http'])" "$work/ready.json")
  metrics=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metrics'])" "$work/ready.json")
  grpc=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['grpc'])" "$work/ready.json")
}

# Polls URL $1 (30 s at most) until it answers 200; $status holds the last code.
wait_for_200() {
  status=""
  for _ in $(seq 300); do
    status=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
    [[ "$status" == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

# Sends signal $1 and expects exit 0 with the "stopped" line.
stop_server() {
  kill "-$1" "$server_pid"
  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  if [[ "$rc" == 0 ]] && grep -qE 'tandem serve: stopped|"message":"stopped"' "$work/serve.log"; then pass "SIG$1: exit 0"
  else fail "SIG$1: exit $rc: $(cat "$work/serve.log")"; fi
}

start_server --metrics-port 0 --grpc-port 0
if [[ "$http" -gt 0 && "$grpc" -gt 0 && "$metrics" -gt 0 ]]; then pass "ready file: $(cat "$work/ready.json")"
else fail "ready file: $(cat "$work/ready.json")"; fi
wait_for_200 "http://127.0.0.1:$http/v2/health/ready" && pass "ready" || fail "never ready (last status $status)"
if curl -s "http://127.0.0.1:$metrics/metrics" | grep '^tandem_server_model_ready{model="cls",version="1"} 1' >/dev/null; then
  pass "metrics port"
else fail "metrics port: no tandem_server_model_ready for cls"; fi
expect_failure 1 "port taken" --model-repository "$repo" --http-port "$http" --grpc-port -1 --metrics-port -1
# SIGHUP: the server looks at its repository again (no polling here) and keeps serving.
mkdir -p "$repo/extra/1"
cp "$model" "$repo/extra/1/model.onnx"
kill -HUP "$server_pid"
if wait_for_200 "http://127.0.0.1:$http/v2/models/extra/ready" && kill -0 "$server_pid" 2>/dev/null; then
  pass "SIGHUP: a model added since start serves"
else fail "SIGHUP: model extra $status: $(cat "$work/serve.log")"; fi
rm -rf "$repo/extra"
# The log: the version's load and the server's readiness, one line each.
if grep -q "^tandem serve: model 'cls' version 1 READY: loaded in .* s; routes " "$work/serve.log" &&
   grep -q "^tandem serve: server READY$" "$work/serve.log"; then pass "log: version and server READY"
else fail "log: $(cat "$work/serve.log")"; fi
stop_server TERM

start_server --metrics-port -1 --grpc-port -1 --handler-threads 4 --json-decode-threads 0 --cache-dir "$work/cache"
if [[ "$metrics" == -1 && "$grpc" == -1 ]]; then pass "metrics and gRPC off"; else fail "off: $(cat "$work/ready.json")"; fi
# --cache-dir reaches the model's engine: once ready, prepare has written its measurements there.
wait_for_200 "http://127.0.0.1:$http/v2/health/ready" || true
if compgen -G "$work/cache/*.json" >/dev/null; then pass "--cache-dir: $(ls "$work/cache")"
else fail "--cache-dir: nothing in $work/cache"; fi
stop_server INT

# Explicit model control: only --load-model models load; the others load through the API.
mkdir -p "$repo/other/1"
cp "$model" "$repo/other/1/model.onnx"
start_server --metrics-port -1 --grpc-port -1 --load-model cls
wait_for_200 "http://127.0.0.1:$http/v2/health/ready" || true
index=$(curl -s -X POST "http://127.0.0.1:$http/v2/repository/index")
other_ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/v2/models/other/ready")
if [[ "$status" == 200 && "$other_ready" == 404 ]] && grep -q '"name":"other","reason":"not loaded (explicit model control' <<<"$index"
then pass "--load-model: cls ready, other listed and not loaded"
else fail "--load-model: ready $status, other $other_ready, index $index"; fi
load=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$http/v2/repository/models/other/load")
if [[ "$load" == 200 ]] && wait_for_200 "http://127.0.0.1:$http/v2/models/other/ready"; then
  pass "--load-model: other loads through the repository API"
else fail "--load-model: load $load, ready $status"; fi
stop_server TERM
rm -rf "$repo/other"

# --log-format json: every line one object with its time; the same events as fields.
start_server --metrics-port -1 --grpc-port -1 --log-format json
for _ in $(seq 300); do
  grep -q '"scope":"server","state":"READY"' "$work/serve.log" && break
  sleep 0.1
done
stop_server TERM
if /usr/bin/python3 - "$work/serve.log" <<'PY'; then pass "log as JSON lines"; else fail "log as JSON: $(cat "$work/serve.log")"; fi
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
assert all(l["time"].endswith("Z") and len(l["time"]) == 24 for l in lines), lines
assert any(l.get("scope") == "version" and l.get("model") == "cls" and l.get("version") == "1"
           and l.get("state") == "READY" and l["detail"].startswith("loaded in ") for l in lines), lines
assert any(l.get("scope") == "server" and l.get("state") == "READY" for l in lines), lines
assert lines[-1].get("message") == "stopped", lines[-1]
PY

# Grace 0 with requests queued behind a slow model (one instance; every call on its first route
# 200 ms late, abandoned at its budget, then answered by the reference): the queued ones are
# cut off with 503 and the exit code is 1.
mkdir -p "$repo/slow/1"
cp "$model" "$repo/slow/1/model.onnx"
echo '{"input_shapes": {"x": [1, 3, 48, 192]}, "instances": 1, "required": false,
       "fault_injection": "latency_ms=200"}' >"$repo/slow/config.json"
/usr/bin/python3 -c "import json; print(json.dumps({'inputs': [{'name': 'x', 'datatype': 'FP32',
  'shape': [1, 3, 48, 192], 'data': [0.5] * (3 * 48 * 192)}]}))" >"$work/body.json"
# sigterm_under_load GRACE: starts the server, sends 8 requests to the slow model, waits until
# its queue holds one (decoded and admitted, not merely received), sends SIGTERM; sets $rc (the
# server's exit code) and leaves each client's HTTP status in $work/code.N.
sigterm_under_load() {
  rm -f "$work"/code.*
  start_server --metrics-port 0 --grpc-port -1 --grace-seconds "$1"
  wait_for_200 "http://127.0.0.1:$http/v2/models/slow/ready" || true
  clients=()
  for i in $(seq 8); do
    curl -s -o /dev/null -w '%{http_code}\n' -X POST --data-binary @"$work/body.json" \
      "http://127.0.0.1:$http/v2/models/slow/infer" >"$work/code.$i" &
    clients+=($!)
  done
  queued=""
  for _ in $(seq 1000); do
    n=$(curl -s "http://127.0.0.1:$http/v2/models/slow/stats" | /usr/bin/python3 -c \
        "import json, sys; print(max(v['queued'] for v in json.load(sys.stdin)['model_stats']))" 2>/dev/null)
    [[ -n "$n" && "$n" -ge 1 ]] && queued=yes && break
    sleep 0.01
  done
  [[ -n "$queued" ]] || fail "requests never queued up (grace $1)"
  kill -TERM "$server_pid"
  rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  wait "${clients[@]}" || true
}

# With a grace period: every request already sent is answered (200), and the exit code is 0.
sigterm_under_load 30
if [[ "$rc" == 0 ]] && [[ "$(cat "$work"/code.* | sort -u)" == 200 ]]; then
  pass "SIGTERM under load: exit 0, every request answered 200"
else fail "SIGTERM under load: exit $rc, codes $(cat "$work"/code.* | tr '\n' ' '): $(tail -5 "$work/serve.log")"; fi

# Grace 0: the queued ones are cut off with 503 and the exit code is 1.
sigterm_under_load 0
if [[ "$rc" == 1 ]] && grep -q "cut off" "$work/serve.log" && grep -q 503 "$work"/code.*; then
  pass "grace 0 with queued requests: exit 1, codes $(cat "$work"/code.* | sort | uniq -c | tr -s ' \n' ' ')"
else fail "grace 0: exit $rc, codes $(cat "$work"/code.* | tr '\n' ' '): $(cat "$work/serve.log")"; fi

if [[ "$failures" -gt 0 ]]; then
  echo "serve_cli_test: $failures failure(s)" >&2
  exit 1
fi
echo "serve_cli_test: all passed"
