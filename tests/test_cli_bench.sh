#!/usr/bin/env bash
# glm47 bench on the dev Q8_0 model with the reference and the Vulkan backend (lavapipe
# here): the Markdown table has a row per test, --json parses and holds every sample and
# consistent statistics, --profile gives per-kernel rows; bad arguments exit 2, a bad model 1.
# Speeds are printed, never compared with a threshold. Run from the repo root with GLM47_BIN.
set -u
BIN=${GLM47_BIN:-build/glm47}
M=golden/dev/dev-Q8_0.gguf
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { # check NAME OUTPUT PATTERN...
  local name=$1 out=$2; shift 2
  for p in "$@"; do
    if ! grep -Eq -- "$p" <<<"$out"; then echo "FAIL $name: no line matching '$p'"; fail=1; fi
  done
}

out=$("$BIN" bench -m $M -p 8 -n 4 -r 2 --backend ref 2>"$tmp/err"); rc=$?
[ $rc -eq 0 ] || { echo "FAIL ref: exit $rc: $(cat "$tmp/err")"; fail=1; }
num='[0-9]+\.[0-9]{2}'
check ref "$out" '^device: cpu reference$' "^model: $M \\(4\\.95 MiB, 4\\.87 M params; f32 20, q8_0 38\\)" \
  "^\\| dev-Q8_0.gguf \\| 4\\.95 MiB \\| 4\\.87 M \\| ref \\| pp8 \\| $num \\| $num \\| $num \\| $num \\|$" \
  "^\\| dev-Q8_0.gguf \\| 4\\.95 MiB \\| 4\\.87 M \\| ref \\| tg4 \\| $num \\| $num \\| $num \\| $num \\|$"
echo "$out" | grep -E '^\| dev' | sed 's/^/  /'

# -b: batched decode rows (aggregate t/s), one row per batch size
out=$("$BIN" bench -m $M -p 0 -n 4 -b 1,3 -r 1 --backend ref 2>"$tmp/err"); rc=$?
[ $rc -eq 0 ] || { echo "FAIL ref -b: exit $rc: $(cat "$tmp/err")"; fail=1; }
check ref-batch "$out" "\\| ref \\| tg4 \\| $num " "\\| ref \\| tg4 x3 \\| $num "

# --draft: each tg test once more as greedy MTP decoding, with its acceptance (the dev model's
# random MTP layer mostly rejects; the counts are what is checked)
out=$("$BIN" bench -m $M -p 0 -n 4 -d 0,8 -r 2 --backend ref --draft 1 2>"$tmp/err"); rc=$?
[ $rc -eq 0 ] || { echo "FAIL ref --draft: exit $rc: $(cat "$tmp/err")"; fail=1; }
check ref-draft "$out" "\\| ref \\| tg4 \\| $num " "\\| ref \\| tg4 mtp1 \\| $num " "\\| ref \\| tg4 mtp1 @ d8 \\| $num " \
  '^tg4 mtp1: mtp accepted [0-9]+ of [1-9][0-9]* drafts \([0-9.]+%\), [0-9.]+ tokens per forward$' \
  '^tg4 mtp1 @ d8: mtp accepted [0-9]+ of [1-9][0-9]* drafts'
"$BIN" bench -m $M -p 0 -n 4 -r 1 --backend ref --draft 2 --json >"$tmp/draft.json" 2>/dev/null ||
  { echo "FAIL ref --draft json: exit $?"; fail=1; }
python3 - "$tmp/draft.json" <<'EOF' || { echo "FAIL ref --draft json"; fail=1; }
import json, sys
r = {x['test']: x for x in json.load(open(sys.argv[1]))['results']}
m = r.get('tg4 mtp2')
ok = m is not None and m['n_draft'] == 2 and m['mtp_steps'] >= 2 and 0 <= m['mtp_accepted'] <= m['mtp_drafts']
ok = ok and m['mtp_drafts'] <= 2 * m['mtp_steps'] and 'n_draft' not in r['tg4']
sys.exit(0 if ok else 1)
EOF

# JSON: every sample present, min <= median <= max, the depth test present and named.
check_json() { # NAME JSON_FILE BACKEND WANT_PROFILE
  python3 - "$2" "$3" "$4" <<'EOF' || { echo "FAIL $1: json checks"; fail=1; }
import json, sys
d = json.load(open(sys.argv[1]))
backend, want_profile = sys.argv[2], sys.argv[3] == '1'
bad = []
if d['backend'] != backend: bad.append(f"backend {d['backend']}")
if d['model_type_mix'] != 'f32 20, q8_0 38': bad.append(f"type mix {d['model_type_mix']}")
tests = [r['test'] for r in d['results']]
if tests != ['pp8', 'tg4', 'pp8 @ d16', 'tg4 @ d16']: bad.append(f'tests {tests}')
for r in d['results']:
    s = r['samples_ts']
    if len(s) != 2 or min(s) <= 0: bad.append(f"{r['test']}: samples {s}")
    if not r['min_ts'] <= r['median_ts'] <= r['max_ts']: bad.append(f"{r['test']}: order")
    if abs(r['median_ts'] - sum(s) / 2) > 1e-6 * r['median_ts']: bad.append(f"{r['test']}: median of 2")
    if (r['n_prompt'], r['n_gen']) not in ((8, 0), (0, 4)): bad.append(f"{r['test']}: sizes")
    prof = r.get('profile')
    if want_profile:
        k = {p['kernel']: p for p in prof or []}
        if 'matvec' not in k or k['matvec']['calls'] < 1 or k['matvec']['ms'] <= 0 or k['matvec']['gbps'] <= 0:
            bad.append(f"{r['test']}: no matvec profile row")
        if sum(p['pct_wall'] for p in prof) > 100.5: bad.append(f"{r['test']}: kernels exceed the wall time")
        if not 0 < r.get('host_first_submit_us', 0) <= r.get('host_record_us', 0) or r.get('host_wait_us', -1) < 0:
            bad.append(f"{r['test']}: host times {r.get('host_first_submit_us')} / {r.get('host_record_us')}")
    elif prof is not None: bad.append(f"{r['test']}: unexpected profile")
for b in bad: print('  ', b)
sys.exit(1 if bad else 0)
EOF
}
"$BIN" bench -m $M -p 8 -n 4 -d 0,16 -r 2 --backend ref --json >"$tmp/ref.json" 2>/dev/null ||
  { echo "FAIL ref json: exit $?"; fail=1; }
check_json ref-json "$tmp/ref.json" ref 0

if "$BIN" bench -m $M -p 8 -n 4 -d 0,16 -r 2 --backend vulkan --json --profile >"$tmp/vk.json" 2>"$tmp/err"; then
  check_json vk-json "$tmp/vk.json" vulkan 1
  out=$("$BIN" bench -m $M -p 8 -n 4 -r 2 --backend vulkan --profile 2>/dev/null)
  # matvec dispatches per token: dense layer 0 = q_a with kv_a (one product), q_b (with the
  # query's rope), k_b, v_b (all heads in one each), o, gate+up (fused), down = 7; MoE layer 1 =
  # the same 5 + routed gate+up and routed down with the mixture, the shared expert riding in
  # both as one more expert = 7 (the router's product runs inside moe_gate_route); lm_head 1:
  # 15 per token, 60 for tg4
  check vk "$out" '^device: .+, driver ' '\| vulkan \| pp8 \|' '^profile tg4 ' '^\| matvec \| [0-9.]+ \| 60 \| ' \
    '^host, per forward \(4\): recording [0-9.]+ us \(first submit after [0-9.]+ us\), [0-9.]+ command buffers' \
    '^dispatch floor \(512 empty 1-workgroup dispatches, best of 3\): [0-9]+\.[0-9]+ us a dispatch with a barrier'
  echo "$out" | grep -E '^(\| dev|device)' | sed 's/^/  /'
elif grep -Eq 'no usable Vulkan driver|no Vulkan device' "$tmp/err"; then
  echo "SKIP vulkan: $(cat "$tmp/err")"
else
  echo "FAIL vulkan: $(cat "$tmp/err")"; fail=1
fi

for args in "" "-m" "-m $M -p x" "-m $M -r 0" "-m $M -p 8,,4" "-m $M -d -1" "-m $M --bogus" \
            "-m $M --backend ref --profile" "-m $M -r 1,2" "-m $M -b 0" "-m $M --draft 0" "-m $M --draft 9"; do
  # shellcheck disable=SC2086
  "$BIN" bench $args >/dev/null 2>&1; rc=$?
  [ $rc -eq 2 ] || { echo "FAIL usage '$args': exit $rc, want 2"; fail=1; }
done
err=$("$BIN" bench -m "$tmp/missing.gguf" -p 8 -n 4 -r 1 --backend ref 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <<<"$err")" -eq 1 ] || { echo "FAIL bad model: exit $rc: $err"; fail=1; }
printf 'GGUF\003\000\000\000' >"$tmp/trunc.gguf"
"$BIN" bench -m "$tmp/trunc.gguf" --backend ref >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || { echo "FAIL truncated model: exit $rc, want 1"; fail=1; }

[ $fail -eq 0 ] && echo "test_cli_bench: all checks passed"
exit $fail
