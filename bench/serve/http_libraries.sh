#!/usr/bin/env bash
# Compares the per-request cost of the HTTP libraries the server could use (docs/serving.md):
# cpp-httplib, libevent's evhttp and Boost.Beast, each serving bench/serve/http_echo.cpp (read a 110 KB
# body, answer a small JSON reply), driven by wrk at concurrency 1 and 8 on loopback.
#   [BODY_BYTES=110592] bench/serve/http_libraries.sh [SECONDS]
# Needs libcpp-httplib-dev, libevent-dev, libboost-dev, wrk (scripts/setup).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
g++ -O2 -std=c++20 -DECHO_HTTPLIB bench/serve/http_echo.cpp -o "$work/echo_httplib" $(pkg-config --cflags --libs cpp-httplib) -pthread
g++ -O2 -std=c++20 -DECHO_BEAST bench/serve/http_echo.cpp -o "$work/echo_beast" -pthread
g++ -O2 -std=c++20 -DECHO_LIBEVENT bench/serve/http_echo.cpp -o "$work/echo_libevent" $(pkg-config --cflags --libs libevent libevent_pthreads) -pthread
head -c "${BODY_BYTES:-110592}" /dev/urandom > "$work/body"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$work/body", "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
port=18590
for lib in httplib libevent beast; do
  port=$((port + 1))
  "$work/echo_$lib" "$port" 8 & pids+=($!)
  for _ in $(seq 50); do curl -s -o /dev/null -X POST --data x "http://127.0.0.1:$port/infer" && break; sleep 0.1; done
  for c in 1 8; do
    out=$(wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"${seconds}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port/infer")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    echo "$lib concurrency $c: p50 $p50 p99 $p99 requests/s $rps"
  done
  kill "${pids[-1]}"
done
