#!/usr/bin/env bash
# glm47 serve end to end: three servers on free ports (one with --api-key, one with --mtp --draft 3), /health answers 503
# or 200 and then 200, then tests/server/e2e.mjs drives them with the official openai client
# (chat, streaming, completions, models, tools, every error class, malformed requests,
# disconnect cancellation, 2x64 concurrent streams with flat RSS); finally SIGTERM must end
# both with exit status 0. node_modules missing is a FAILURE (run `make deps`), not a skip.
set -u
BIN=${GLM47_BIN:-build/glm47}
MODEL=golden/dev/dev-Q8_0.gguf
fail=0
tmp=$(mktemp -d)
pids=()
cpids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done; if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

if ! command -v node >/dev/null 2>&1 || [ ! -f node_modules/openai/package.json ]; then
  echo "FAIL test_server: node or node_modules/openai is missing (run make deps: ci/deps.sh runs npm ci)"
  exit 1
fi

# start NAME ARGS...: a server on port 0 (the kernel picks a free one); sets PORT_<NAME>, PID_<NAME>
start() {
  local name=$1; shift
  "$BIN" serve -m "$MODEL" --port 0 --backend ref --model-name dev "$@" 2>"$tmp/$name.log" &
  local pid=$! port=""
  pids+=("$pid")
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^glm47 serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/$name.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "FAIL $name: no port: $(cat "$tmp/$name.log")"; exit 1; }
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")
    [ "$code" = 200 ] && break
    [ "$code" = 503 ] || [ "$code" = 000 ] || { echo "FAIL $name: /health answered $code"; exit 1; }
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "FAIL $name: /health never became 200"; exit 1; }
  eval "PORT_$name=$port PID_$name=$pid"
}

start a --max-batch 8
start b --api-key sekrit-key --queue 2 --max-batch 1
start c --mtp --draft 3
# shellcheck disable=SC2154
BASE="http://127.0.0.1:$PORT_a" BASE2="http://127.0.0.1:$PORT_b" BASE3="http://127.0.0.1:$PORT_c" KEY=sekrit-key PID=$PID_a MODEL=dev \
  timeout 120 node tests/server/e2e.mjs || { echo "FAIL e2e.mjs (server log: $(tail -5 "$tmp/a.log"))"; fail=1; }

# /metrics: running sequences and KV pages (the cached prefixes of the load test hold some)
met=$(curl -s "http://127.0.0.1:$PORT_a/metrics")
echo "$met" | grep -q '^glm47_running_sequences 0$' || { echo "FAIL metrics: running sequences: $(echo "$met" | grep running)"; fail=1; }
echo "$met" | grep -Eq '^glm47_kv_pages_used [1-9][0-9]*$' || { echo "FAIL metrics: kv pages used: $(echo "$met" | grep kv_pages)"; fail=1; }
echo "$met" | grep -Eq '^glm47_kv_pages_total [1-9][0-9]*$' || { echo "FAIL metrics: kv pages total"; fail=1; }
# --ctx past the model's context length: one line, exit status 1
out=$("$BIN" serve -m "$MODEL" --port 0 --ctx 8193 2>&1); rc=$?
{ [ "$rc" = 1 ] && [ "$(echo "$out" | grep -c .)" -le 2 ] && echo "$out" | grep -q "exceeds the model's context"; } \
  || { echo "FAIL --ctx past the model: rc $rc: $out"; fail=1; }

# SIGTERM with a long stream running and one queued on b: the running one ends within the
# grace period with [DONE], the queued one gets an error event, the server exits 0
for i in 1 2; do
  curl -sN "http://127.0.0.1:$PORT_b/v1/completions" -H "Authorization: Bearer sekrit-key" \
    -d '{"prompt":"x","max_tokens":4000,"ignore_eos":true,"stream":true}' > "$tmp/inflight$i.txt" 2>/dev/null &
  cpids+=($!)
done
for _ in $(seq 1 50); do
  curl -s "http://127.0.0.1:$PORT_b/metrics" | grep -q '^glm47_queue_depth 2$' && break
  sleep 0.1
done

# SIGTERM: both stop accepting and exit 0
for name in a b c; do
  eval "pid=\$PID_$name"
  kill -TERM "$pid"
  rc=0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "FAIL $name: still running 10 s after SIGTERM"; fail=1; continue; fi
  wait "$pid"; rc=$?
  [ "$rc" = 0 ] || { echo "FAIL $name: exit status $rc after SIGTERM: $(tail -3 "$tmp/$name.log")"; fail=1; }
  grep -q "SIGTERM: stopping" "$tmp/$name.log" || { echo "FAIL $name: no shutdown message"; fail=1; }
done

for p in "${cpids[@]}"; do wait "$p"; done
for i in 1 2; do
  tail -c 20 "$tmp/inflight$i.txt" | grep -q 'data: \[DONE\]' || { echo "FAIL in-flight stream $i: no [DONE] at SIGTERM"; fail=1; }
done
grep -Eq '"finish_reason":"(cancelled|length)"' "$tmp/inflight1.txt" "$tmp/inflight2.txt" \
  || { echo "FAIL in-flight: the running stream did not end (cancelled after the grace period, or done)"; fail=1; }
grep -q 'shutting down' "$tmp/inflight1.txt" "$tmp/inflight2.txt" \
  || { echo "FAIL in-flight: the queued stream got no shutdown error"; fail=1; }

# bad command lines: one line, exit 1 or 2
out=$("$BIN" serve -m golden/dev/no-such.gguf --port 0 2>&1); rc=$?
[ "$rc" = 1 ] && [ "$(printf '%s\n' "$out" | grep -c '^glm47 serve: ')" -ge 1 ] || { echo "FAIL missing model: rc $rc: $out"; fail=1; }
"$BIN" serve --port 0 >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] || { echo "FAIL no -m: rc $rc"; fail=1; }
"$BIN" serve -m "$MODEL" --port 99999 >/dev/null 2>&1; rc=$?
[ "$rc" = 1 ] || { echo "FAIL bad port: rc $rc"; fail=1; }

[ $fail = 0 ] && echo "test_server: ok"
exit $fail
