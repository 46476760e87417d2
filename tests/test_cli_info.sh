#!/usr/bin/env bash
# glm47 info on a GGUF and on the HF directory: the key numbers appear; a bad path exits 1
# with one line; a usage error exits 2. Run from the repo root with GLM47_BIN set.
set -u
BIN=${GLM47_BIN:-build/glm47}
fail=0
check() { # check NAME OUTPUT PATTERN...
  local name=$1 out=$2; shift 2
  for p in "$@"; do
    if ! grep -Eq -- "$p" <<<"$out"; then echo "FAIL $name: no line matching '$p'"; fail=1; fi
  done
}
common=('^architecture: ' 'hidden_size +256$' 'num_hidden_layers +2$' 'num_attention_heads +2$'
        'q_lora_rank +256$' 'kv_lora_rank +256$' 'qk_nope_head_dim +64$' 'qk_rope_head_dim +32$'
        'v_head_dim +128$' 'n_routed_experts +6$' 'num_experts_per_tok +3$' 'n_shared_experts +1$'
        'routed_scaling_factor +1.8$' 'vocab_size +512$' 'first_k_dense_replace +1$'
        '^mtp: present' '^gating: sigmoid$' 'merges 236' '^eos ids: 492 499 501$')

out=$("$BIN" info golden/dev/dev-Q4_K_M.gguf); rc=$?
[ $rc -eq 0 ] || { echo "FAIL gguf: exit $rc"; fail=1; }
check gguf "$out" "${common[@]}" '^source: gguf$' '^architecture: deepseek2$' '^tensors: 58 ' \
  'type f32 +20 tensors' 'type q4_K +32 tensors' 'type q6_K +3 tensors' 'type q5_0 +3 tensors' \
  '^file size: 2943136 bytes' 'vocab 512' 'bos 494 eos 492 eot 499 eom 501'

out=$("$BIN" info golden/dev/hf); rc=$?
[ $rc -eq 0 ] || { echo "FAIL hf: exit $rc"; fail=1; }
check hf "$out" "${common[@]}" '^source: hf$' '^architecture: glm4_moe_lite$' '^tensors: 85 ' \
  'type bf16 +84 tensors' 'type f32 +1 tensors' 'vocab 492, merges 236, added tokens 20' 'bos 494'

# -m MODEL as the other commands take it: the same report
out_m=$("$BIN" info -m golden/dev/dev-Q4_K_M.gguf); rc=$?
[ $rc -eq 0 ] && [ "$out_m" = "$("$BIN" info golden/dev/dev-Q4_K_M.gguf)" ] || { echo "FAIL info -m: exit $rc"; fail=1; }

err=$("$BIN" info /nonexistent/model.gguf 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] || { echo "FAIL bad path: exit $rc, want 1"; fail=1; }
[ "$(wc -l <<<"$err")" -eq 1 ] || { echo "FAIL bad path: not one line: $err"; fail=1; }
check badpath "$err" '^glm47 info: .*/nonexistent/model.gguf'

tmp=$(mktemp -d); printf 'GGUF\003\000\000\000' >"$tmp/trunc.gguf"
err=$("$BIN" info "$tmp/trunc.gguf" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <<<"$err")" -eq 1 ] || { echo "FAIL truncated gguf: exit $rc: $err"; fail=1; }
mkdir "$tmp/hf"; echo '{"model_type":"llama"}' >"$tmp/hf/config.json"
err=$("$BIN" info "$tmp/hf" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] || { echo "FAIL other arch: exit $rc"; fail=1; }
check otherarch "$err" 'unsupported architecture llama'
rm -rf "$tmp"

"$BIN" info >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL no argument: exit $rc, want 2"; fail=1; }
"$BIN" info a b >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL two arguments: exit $rc, want 2"; fail=1; }
"$BIN" info -m >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL -m without a model: exit $rc, want 2"; fail=1; }
"$BIN" info -x golden/dev/dev-Q4_K_M.gguf >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL unknown option: exit $rc, want 2"; fail=1; }

[ $fail -eq 0 ] && echo "test_cli_info: all checks passed"
exit $fail
