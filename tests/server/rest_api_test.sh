#!/usr/bin/env bash
# rest_api_test.sh: end-to-end test of the REST API of `tandem serve` (docs/serving.md).
#   bash tests/server/rest_api_test.sh REPO_ROOT TANDEM_BINARY
# Starts the server on free loopback ports over a temporary repository (the PaddleOCR direction
# classifier as `cls`, and `broken`: garbage bytes that fail to load), then checks every
# endpoint, that REST JSON and REST binary answers are bit-identical to `tandem run`, a table of
# malformed requests (each a 4xx with a one-line {"error": ...}), a connection whose headers
# never finish, and that SIGTERM ends the server with exit code 0. The server is killed on any
# exit of this script, and the whole test gives up after 300 s.
set -euo pipefail

root="$(cd "${1:?usage: rest_api_test.sh REPO_ROOT TANDEM_BINARY}" && pwd)"
tandem="${2:?usage: rest_api_test.sh REPO_ROOT TANDEM_BINARY}"
py=/usr/bin/python3
model="$root/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"

source "$root/tests/lib/server_env.sh"
server_env_init rest_api_test 300

# --- the repository and the server --------------------------------------------------------
repo="$work/repo"
mkdir -p "$repo/cls/1" "$repo/broken/1"
cp "$model" "$repo/cls/1/model.onnx"
echo '{"input_shapes": {"x": [1, 3, 48, 192]}}' >"$repo/cls/config.json"
head -c 4096 /dev/urandom >"$repo/broken/1/model.onnx"
echo '{"required": false}' >"$repo/broken/config.json"
# `tight`: the classifier with one engine call at a time and no queue, to see 503 + Retry-After.
mkdir -p "$repo/tight/1"
cp "$model" "$repo/tight/1/model.onnx"
echo '{"input_shapes": {"x": [1, 3, 48, 192]}, "instances": 1, "max_queue_size": 0}' >"$repo/tight/config.json"

ready_file="$work/ready.json"
timeout -k 5 290 "$tandem" serve --model-repository "$repo" --http-port 0 --grpc-port -1 --metrics-port 0 \
  --ready-file "$ready_file" >"$work/server.log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + 120))
until [[ -s "$ready_file" ]]; do
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "FAIL: the server exited" >&2; exit 1; }
  ((SECONDS < deadline)) || { cat "$work/server.log" >&2; echo "FAIL: no ready file after 120 s" >&2; exit 1; }
  sleep 0.1
done
read -r port metrics_port < <($py -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["http"], d["metrics"])' "$ready_file")
base="http://127.0.0.1:$port"

# request METHOD PATH [curl args...]: sets $code and $body (the body is also in $work/body).
request() {
  local method="$1" path="$2"
  shift 2
  code=$(curl -s -o "$work/body" -D "$work/headers" -w '%{http_code}' --max-time 30 -X "$method" "$base$path" "$@") || code=000
  body="$(cat "$work/body")"
}
expect() {  # expect LABEL CODE [BODY_SUBSTRING]
  if [[ "$code" != "$2" ]]; then fail "$1: status $code, expected $2: $body"; return; fi
  if [[ -n "${3:-}" && "$body" != *"$3"* ]]; then fail "$1: body lacks '$3': $body"; return; fi
  pass "$1"
}

until curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$base/v2/health/ready" | grep -q 200; do
  ((SECONDS < deadline)) || { cat "$work/server.log" >&2; echo "FAIL: not ready after 120 s" >&2; exit 1; }
  sleep 0.2
done

# --- endpoints ------------------------------------------------------------------------------
request GET /v2/health/live;                      expect "live" 200 '"live":true'
request GET /v2/health/ready;                     expect "ready" 200 '"ready":true'
request GET /v2;                                  expect "server metadata" 200 '"name":"tandem"'
request GET /v2/models/cls;                       expect "model metadata" 200 '"name":"x"'
request GET /v2/models/cls/versions/1;            expect "model metadata, version 1" 200 '"datatype":"FP32"'
request GET /v2/models/cls;                       expect "model metadata, routes" 200 '"breaker":"closed"'
request GET /v2/models/cls/versions/7;            expect "model metadata, unknown version" 404 '"error"'
request GET /v2/models/nosuch;                    expect "model metadata, unknown model" 404 '"error"'
request GET /v2/models/cls/ready;                 expect "model ready" 200 '"ready":true'
request GET /v2/models/cls/versions/1/ready;      expect "model version ready" 200 '"ready":true'
request GET /v2/models/broken/ready;              [[ "$code" == 503 || "$code" == 404 ]] && pass "failed model not ready ($code)" || fail "failed model ready: $code $body"
request POST /v2/repository/index;                expect "repository index" 200 '"state":"READY"'
[[ "$body" == *'"name":"broken"'*'FAILED'* || "$body" == *'FAILED'*'"name":"broken"'* ]] && pass "index shows broken as FAILED" || fail "index: $body"
# The log says the same, one line with the index's reason.
if grep -q "^tandem serve: model 'broken' version 1 FAILED: .*not a valid ONNX model" "$work/server.log"; then
  pass "log: broken FAILED with its reason"
else fail "log: $(cat "$work/server.log")"; fi

# --- inference: REST JSON and REST binary against `tandem run` --------------------------------
$py - "$work" <<'PY'
import json, struct, sys
import numpy as np
work = sys.argv[1]
x = np.random.default_rng(3).standard_normal((1, 3, 48, 192)).astype(np.float32)
np.save(work + "/x.npy", x)
doc = {"id": "json-1", "inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
open(work + "/infer.json", "w").write(json.dumps(doc))
nested = dict(doc, inputs=[dict(doc["inputs"][0], data=x.tolist())])
open(work + "/infer_nested.json", "w").write(json.dumps(nested))
head = json.dumps({"id": "bin-1", "inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                              "parameters": {"binary_data_size": x.nbytes}}],
                   "outputs": [{"name": "softmax_0.tmp_0", "parameters": {"binary_data": True}}]}).encode()
open(work + "/infer.bin", "wb").write(head + x.tobytes())
open(work + "/infer.bin.len", "w").write(str(len(head)))
PY
# The server answers through the engine on its first route, cpu (serve's default chain); so does
# `tandem run --routes cpu` (plain `tandem run` picks the reference backend, whose sums differ in
# the last bits).
"$tandem" run "$model" --routes cpu --input "x=$work/x.npy" --output-dir "$work/expected" >/dev/null

request POST /v2/models/cls/infer -H 'Content-Type: application/json' --data-binary "@$work/infer.json"
expect "infer JSON" 200 '"id":"json-1"'
cp "$work/body" "$work/answer.json"
request POST /v2/models/cls/versions/1/infer --data-binary "@$work/infer_nested.json"
expect "infer JSON, nested data, version 1" 200 '"softmax_0.tmp_0"'
cp "$work/body" "$work/answer_nested.json"
request POST /v2/models/cls/infer -H "Inference-Header-Content-Length: $(cat "$work/infer.bin.len")" \
  -H 'Content-Type: application/octet-stream' --data-binary "@$work/infer.bin"
expect "infer binary" 200 '"binary_data_size":8'
cp "$work/body" "$work/answer.bin"
header_length=$(tr -d '\r' <"$work/headers" | awk -F': ' 'tolower($1)=="inference-header-content-length" {print $2}')

if $py - "$work" "$header_length" <<'PY'; then pass "REST JSON and binary answers are bit-identical to tandem run"; else fail "answers differ from tandem run"; fi
import json, sys
import numpy as np
work, header_length = sys.argv[1], int(sys.argv[2])
expected = np.load(work + "/expected/softmax_0.tmp_0.npy")
ok = True
for name in ("answer.json", "answer_nested.json"):
    out = json.load(open(work + "/" + name))["outputs"][0]
    got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    if out["datatype"] != "FP32" or got.shape != expected.shape or got.tobytes() != expected.tobytes():
        print(name, "differs:", got.ravel()[:4], expected.ravel()[:4], file=sys.stderr); ok = False
raw = open(work + "/answer.bin", "rb").read()
head = json.loads(raw[:header_length])
out = head["outputs"][0]
got = np.frombuffer(raw[header_length:], dtype=np.float32).reshape(out["shape"])
if out["parameters"]["binary_data_size"] != expected.nbytes or got.tobytes() != expected.tobytes():
    print("binary differs:", got.ravel()[:4], expected.ravel()[:4], file=sys.stderr); ok = False
sys.exit(0 if ok else 1)
PY

request GET /v2/models/cls/stats;               expect "model stats" 200 '"model_stats"'
request GET /v2/models/cls/versions/1/stats;    expect "model version stats" 200 '"succeeded"'
request GET /v2/models/cls/stats;               expect "stats in the extension's schema" 200 '"inference_stats":{"compute_infer":{"count":'
request GET /v2/models/nosuch/stats;            expect "stats, unknown model" 404 '"error"'
request GET /metrics;                           expect "metrics on the HTTP port" 200 'tandem_server_requests_total'
code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 30 "http://127.0.0.1:$metrics_port/metrics") || code=000
body="$(cat "$work/body")";                     expect "metrics on the metrics port" 200 'tandem_server_requests_total'
code=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 30 "http://127.0.0.1:$metrics_port/v2/health/live") || code=000
body="$(cat "$work/body")";                     expect "metrics port serves only /metrics" 404 '"error"'

# --- malformed requests: each a 4xx with a one-line {"error": "..."} -------------------------
$py - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
d = work + "/bad"; os.makedirs(d)
def doc(inputs, **extra): return json.dumps(dict({"inputs": inputs}, **extra)).encode()
def x(**fields):
    e = {"name": "x", "datatype": "FP32", "shape": [1, 3, 48, 192], "data": [0.5] * 27648}
    e.update(fields); return e
cases = {
    "invalid_json": b'{"inputs": [',
    "invalid_utf8": b'{"id": "\xff\xfe", "inputs": []}',
    "empty": b'',
    "not_object": b'[1, 2]',
    "inputs_not_array": doc({}),
    "wrong_dtype": doc([x(datatype="INT64", data=[1] * 27648)]),
    "unknown_dtype": doc([x(datatype="FP128")]),
    "shape_mismatch": doc([x(shape=[1, 3, 96, 96], data=[0.5] * 27648)]),
    "count_mismatch": doc([x(data=[0.5] * 100)]),
    "non_numeric": doc([x(data=["a"] * 27648)]),
    "nested_mismatch": doc([x(shape=[2, 2], data=[[1, 2], [3]])]),
    "name_not_string": doc([x(name=5)]),
    "negative_dim": doc([x(shape=[1, -3, 48, 192])]),
    "overflowing_dims": doc([x(shape=[4294967296, 4294967296, 4294967296])]),
    "fp32_out_of_range": doc([x(data=[1e39] * 27648)]),
    "duplicate_inputs": doc([x(), x()]),
    "missing_input": doc([]),
    "unknown_output": doc([x()], outputs=[{"name": "nope"}]),
    "binary_flag_not_bool": doc([x()], outputs=[{"name": "softmax_0.tmp_0", "parameters": {"binary_data": "yes"}}]),
    "negative_timeout": doc([x()], parameters={"timeout": -5}),
    "unknown_input": doc([x(name="y")]),
}
for name, body in cases.items(): open(f"{d}/{name}", "wb").write(body)
# Binary bodies: the JSON part's length goes in $name.len.
def binary(name, size, payload):
    head = doc([{"name": "x", "datatype": "FP32", "shape": [1, 3, 48, 192], "parameters": {"binary_data_size": size}}])
    open(f"{d}/{name}", "wb").write(head + payload); open(f"{d}/{name}.len", "w").write(str(len(head)))
binary("byte_count_mismatch", 1000, b"\0" * 1000)
binary("binary_truncated", 110592, b"\0" * 5000)
binary("binary_left_over", 110592, b"\0" * 110600)
PY

bad_request() {  # bad_request LABEL CODE BODY_FILE [curl args]
  local label="$1" want="$2" file="$3"
  shift 3
  request POST /v2/models/cls/infer --data-binary "@$work/bad/$file" "$@"
  check_error "$label" "$want"
}
check_error() {  # the last response: status $2 and a one-line {"error": "<non-empty>"}
  if [[ "$code" != "$2" ]]; then fail "$1: status $code, expected $2: ${body:0:300}"; return; fi
  if ! $py -c 'import json,sys; b=open(sys.argv[1],"rb").read(); d=json.loads(b); assert b"\n" not in b and list(d)==["error"] and d["error"], b' "$work/body" 2>/dev/null; then
    fail "$1: not a one-line {\"error\": ...}: ${body:0:300}"; return
  fi
  pass "$1 -> $2: $body"
}
bad_request "invalid JSON" 400 invalid_json
bad_request "invalid UTF-8" 400 invalid_utf8
bad_request "empty body" 400 empty
bad_request "body not an object" 400 not_object
bad_request "inputs not an array" 400 inputs_not_array
bad_request "wrong dtype" 400 wrong_dtype
bad_request "unknown dtype" 400 unknown_dtype
bad_request "shape mismatch" 400 shape_mismatch
bad_request "data count mismatch" 400 count_mismatch
bad_request "non-numeric data" 400 non_numeric
bad_request "nested data not matching the shape" 400 nested_mismatch
bad_request "input name not a string" 400 name_not_string
bad_request "negative dim" 400 negative_dim
bad_request "overflowing dims" 413 overflowing_dims
bad_request "FP32 out of range" 400 fp32_out_of_range
bad_request "duplicate inputs" 400 duplicate_inputs
bad_request "missing input" 400 missing_input
bad_request "unknown input" 400 unknown_input
bad_request "unknown output" 400 unknown_output
bad_request "binary_data not a boolean" 400 binary_flag_not_bool
bad_request "negative timeout" 400 negative_timeout
bad_request "binary byte-count mismatch" 400 byte_count_mismatch -H "Inference-Header-Content-Length: $(cat "$work/bad/byte_count_mismatch.len")"
bad_request "binary data truncated" 400 binary_truncated -H "Inference-Header-Content-Length: $(cat "$work/bad/binary_truncated.len")"
bad_request "binary data left over" 400 binary_left_over -H "Inference-Header-Content-Length: $(cat "$work/bad/binary_left_over.len")"
bad_request "header length past the body" 400 byte_count_mismatch -H "Inference-Header-Content-Length: 99999"
bad_request "header length not numeric" 400 byte_count_mismatch -H "Inference-Header-Content-Length: 12abc"
bad_request "header length negative" 400 byte_count_mismatch -H "Inference-Header-Content-Length: -20"
request POST /v2/models/nosuch/infer --data-binary "@$work/infer.json";            check_error "unknown model" 404
request POST /v2/models/cls/versions/9/infer --data-binary "@$work/infer.json";    check_error "unknown version" 404
request POST /v2/models/cls/versions/abc/infer --data-binary "@$work/infer.json";  check_error "version not a number" 404
request GET /v2/no/such/endpoint;                                                  check_error "unknown endpoint" 404
# A known path under another method: 405 naming the one it takes, in Allow too.
request GET /v2/models/cls/infer;                                                  check_error "infer by GET" 405
grep -qi '^Allow: POST' "$work/headers" && pass "405 says Allow: POST" || fail "405 without Allow: POST: $(cat "$work/headers")"
request POST /v2/health/ready;                                                     check_error "ready by POST" 405
grep -qi '^Allow: GET' "$work/headers" && pass "405 says Allow: GET" || fail "405 without Allow: GET: $(cat "$work/headers")"
request DELETE /v2/models/cls;                                                     check_error "metadata by DELETE" 405
# HEAD wherever GET goes: GET's status and Content-Length, no body.
code=$(curl -s -I -o "$work/head" -w '%{http_code}' --max-time 10 "$base/v2/health/ready") || code=000
[[ "$code" == 200 ]] && grep -qi '^Content-Length: 14' "$work/head" && pass "HEAD ready: 200 with GET's length" ||
  fail "HEAD ready: status $code: $(cat "$work/head")"

# Raw HTTP: a body shorter than its Content-Length (the server gives up after its read timeout),
# a huge Content-Length answered before any body is sent, and a Content-Length that is not a
# number. The client keeps its side open: httplib does not answer a half-closed connection.
raw_http() {  # raw_http REQUEST_BYTES(python literal): sets $code and $body from the reply
  $py - "$port" "$1" "$work/body" <<'PY' >"$work/raw_status" || true
import ast, re, socket, sys
port, data, out = int(sys.argv[1]), ast.literal_eval(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(data)
reply = b""
while True:
    head, sep, body = reply.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    if sep and length and len(body) >= int(length.group(1)): break
    chunk = s.recv(65536)
    if not chunk: break
    reply += chunk
open(out, "wb").write(body)
print(head.split(b" ")[1].decode() if head else "000")
PY
  code="$(cat "$work/raw_status")"
  body="$(cat "$work/body")"
}
raw_http "b'POST /v2/models/cls/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{\"inputs\": []'"
check_error "truncated body" 400
raw_http "b'POST /v2/models/cls/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000000\r\n\r\n'"
check_error "huge Content-Length" 413
raw_http "b'POST /v2/models/cls/infer HTTP/1.1\r\nHost: t\r\nContent-Length: lots\r\n\r\n{}'"
check_error "Content-Length not a number" 400

request POST /v2/models/cls/infer --data-binary "@$work/infer.json"
expect "a good request after the bad ones" 200 '"id":"json-1"'

# --- headers that never finish: the server closes that connection and keeps serving -----------
# httplib answers 400 once a read waits past the read timeout (serve: 5 s), then closes the
# connection when its keep-alive wait (5 s) ends with nothing more.
$py - "$port" <<'PY' >"$work/slow" 2>&1 &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Half: ")
start = time.monotonic()
reply, answered = b"", None
try:
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        reply += chunk
        answered = answered or time.monotonic() - start
    closed = time.monotonic() - start
    ok = reply.startswith(b"HTTP/1.1 400") and answered < 8 and closed < 15
    print("%s: answered %s after %.1f s, closed after %.1f s" % ("closed" if ok else "too slow", reply[:12], answered or -1, closed))
except socket.timeout:
    print("still open after 30 s")
PY
slow_pid=$!
request GET /v2/health/ready;  expect "serving others while a client sends half its headers" 200
wait "$slow_pid" || true
if grep -q "^closed" "$work/slow"; then pass "slow headers: $(cat "$work/slow")"; else fail "slow headers: $(cat "$work/slow")"; fi

# --- a full queue: 503 with Retry-After, and the others still answered ----------------------
if $py - "$port" "$work/infer.json" <<'PY'; then pass "queue full: 503 with Retry-After and a JSON error"; else fail "queue full"; fi
import http.client, json, sys, threading
port, body = int(sys.argv[1]), open(sys.argv[2], "rb").read()
barrier, results = threading.Barrier(24), []
def one():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    barrier.wait()
    c.request("POST", "/v2/models/tight/infer", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first = (r.status, r.getheader("Retry-After"), r.read())
    # The same connection serves a second request: a refusal (often decided from the headers,
    # its body then skipped) leaves the connection at the next request's first byte.
    c.request("GET", "/v2/health/live")
    again = c.getresponse()
    results.append(first + (again.status, again.read()))
threads = [threading.Thread(target=one) for _ in range(24)]
for t in threads: t.start()
for t in threads: t.join()
codes = sorted(r[0] for r in results)
full = [r for r in results if r[0] == 503]
ok = len(results) == 24 and set(codes) <= {200, 503} and 200 in codes and full and \
     all(r[1] == "1" and "error" in json.loads(r[2]) for r in full) and \
     all(r[3] == 200 and json.loads(r[4]) == {"live": True} for r in results)
print("statuses:", codes, file=sys.stderr)
sys.exit(0 if ok else 1)
PY

# --- the repository extension -------------------------------------------------------------------
request POST /v2/repository/models/cls/unload;      expect "unload" 200
request POST /v2/models/cls/infer --data-binary "@$work/infer.json";  check_error "infer after unload" 404
request POST /v2/repository/models/cls/load;        expect "load" 200
request GET /v2/models/cls/ready;                   expect "ready after load" 200 '"ready":true'
request POST /v2/models/cls/infer --data-binary "@$work/infer.json";  expect "infer after load" 200 '"id":"json-1"'
request POST /v2/repository/models/broken/load;     check_error "load of a broken model" 400
request POST /v2/repository/models/nosuch/load;     check_error "load of an unknown model" 404
request POST /v2/repository/models/cls/load -d '{"parameters": {"config": "{}"}}'
check_error "load with a config parameter (refused, not ignored)" 400
[[ "$body" == *"parameter 'config' is not supported"* ]] && pass "the refusal names the parameter" || fail "config refusal: $body"
request POST /v2/repository/models/cls/unload -d '{"parameters": {"unload_dependents": "yes"}}'
check_error "unload_dependents not a boolean" 400
request POST /v2/repository/models/cls/load -d '[1]';  check_error "load with a body that is not an object" 400
request POST /v2/repository/index -d '{"ready": true}'
[[ "$code" == 200 && "$body" == *'"name":"cls"'* && "$body" != *broken* ]] && pass "index of ready models" || fail "ready index: $code $body"

# --- SIGTERM: a clean exit ---------------------------------------------------------------------
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=""
if [[ $rc -eq 0 ]]; then pass "SIGTERM: exit 0"; else fail "SIGTERM: exit $rc"; tail -20 "$work/server.log" >&2; fi

if ((failures > 0)); then
  echo "rest_api_test: $failures check(s) failed" >&2
  exit 1
fi
echo "rest_api_test: all checks passed"
