# server_env.sh: what the server's end-to-end shell tests share: a scratch folder and a server
# process that never outlive the test, a watchdog, and pass/fail counting.
#   source "$root/tests/lib/server_env.sh"; server_env_init NAME WATCHDOG_SECONDS
# Sets: work (the scratch folder), server_pid (set it to the server's pid; killed at exit),
# failures (count). Defines pass and fail.
server_env_init() {
  server_env_name=$1
  work="$(mktemp -d)"
  server_pid=""
  watchdog_pid=""
  failures=0
  trap server_env_cleanup EXIT
  trap 'echo "$server_env_name: interrupted" >&2; exit 1' TERM INT
  (sleep "$2" && echo "$server_env_name: gave up after $2 s" >&2 && kill -TERM $$) >/dev/null 2>&1 &
  watchdog_pid=$!
}

server_env_cleanup() {
  [[ -n "$server_pid" ]] && kill -KILL "$server_pid" 2>/dev/null || true
  [[ -n "$watchdog_pid" ]] && kill "$watchdog_pid" 2>/dev/null || true
  rm -rf "$work"
}

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok   $*"; }
