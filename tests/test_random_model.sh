#!/usr/bin/env bash
# glm47 quantize --random --like glm-4.7-flash: 2-layer models at full width (Q4_K_M and Q8_0)
# load in glm47 info with the real shapes, the llama-quantize type mix for block_count 2 and the
# deepseek2 metadata of the real files (gguf-spec §1.10); run works on them; the bytes depend
# on the seed only (not the thread count); --mtp adds the nextn layer; bad arguments exit 2,
# an unwritable output exits 1 and leaves nothing. The quantized weights are drawn directly as
# blocks (~8 s for the 0.84 GiB model on this 2-core machine, mostly writing).
set -u
BIN=${GLM47_BIN:-build/glm47}
fail=0
check() { # check NAME OUTPUT PATTERN...
  local name=$1 out=$2; shift 2
  for p in "$@"; do
    if ! grep -Eq -- "$p" <<<"$out"; then echo "FAIL $name: no line matching '$p'"; fail=1; fi
  done
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shapes=('hidden_size +2048$' 'num_hidden_layers +2$' 'num_attention_heads +20$' 'q_lora_rank +768$'
        'kv_lora_rank +512$' 'qk_nope_head_dim +192$' 'qk_rope_head_dim +64$' 'v_head_dim +256$'
        'intermediate_size +10240$' 'moe_intermediate_size +1536$' 'n_routed_experts +64$'
        'num_experts_per_tok +4$' 'n_shared_experts +1$' 'first_k_dense_replace +1$' 'vocab_size +154880$'
        'max_position_embeddings +202752$' 'routed_scaling_factor +1.8$' '^gating: sigmoid$' '^mtp: absent'
        'tokenizer: gguf metadata, model gpt2, vocab 154880' 'bos 154822 eos 154820 eot 154827 eom 154829'
        '^eos ids: 154820 154827 154829$' '^tensors: 34 ')

# Q4_K_M, block_count 2: use_more_bits(1, 2) holds, so layer 1's ffn_down_exps/_shexp and
# output.weight are Q6_K; attn_k_b (ne0 192) falls back to Q5_0; norms, router and bias stay
# F32 (3 globals + 13 dense + 18 MoE tensors = 34; gguf-spec §3.3).
out=$("$BIN" quantize --random --like glm-4.7-flash --type q4_k_m "$tmp/q4.gguf" --layers 2 --seed 7 --threads 2); rc=$?
[ $rc -eq 0 ] || { echo "FAIL q4_k_m: exit $rc"; fail=1; }
check q4-quantize "$out" '34 tensors \(f32 11, q5_0 2, q4_K 18, q6_K 3\)'
out=$("$BIN" info "$tmp/q4.gguf"); rc=$?
[ $rc -eq 0 ] || { echo "FAIL q4 info: exit $rc"; fail=1; }
check q4-info "$out" "${shapes[@]}" 'type f32 +11 tensors' 'type q5_0 +2 tensors' 'type q4_K +18 tensors' \
  'type q6_K +3 tensors' '^tensors: 34 \(897317120 bytes'

# The metadata llama.cpp reads (gguf-spec §1.10), straight from the file header.
python3 - "$tmp/q4.gguf" <<'EOF' || fail=1
import struct, sys
d = open(sys.argv[1], 'rb').read(1 << 22)
p = 4 + 4
def rd(f):
    global p; v = struct.unpack_from('<' + f, d, p)[0]; p += struct.calcsize('<' + f); return v
def rs():
    n = rd('Q'); global p; s = d[p:p + n].decode(); p += n; return s
size = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}
def val(t):
    global p
    if t == 8: return rs()
    if t == 9:
        at, n = rd('I'), rd('Q')
        if at == 8: return [rs() for _ in range(n)]
        p += n * struct.calcsize(size[at]); return n
    return rd(size[t])
nt, nk = rd('Q'), rd('Q')
kv = {}
for _ in range(nk):
    k = rs(); kv[k] = val(rd('I'))
want = {'general.architecture': 'deepseek2', 'deepseek2.block_count': 2, 'deepseek2.embedding_length': 2048,
        'deepseek2.attention.head_count': 20, 'deepseek2.attention.head_count_kv': 1,
        'deepseek2.attention.key_length': 576, 'deepseek2.attention.value_length': 512,
        'deepseek2.attention.key_length_mla': 256, 'deepseek2.attention.value_length_mla': 256,
        'deepseek2.expert_gating_func': 2, 'deepseek2.expert_count': 64, 'deepseek2.expert_used_count': 4,
        'deepseek2.leading_dense_block_count': 1, 'deepseek2.vocab_size': 154880,
        'deepseek2.rope.dimension_count': 64, 'deepseek2.expert_weights_norm': True,
        'general.file_type': 15, 'general.quantization_version': 2, 'tokenizer.ggml.pre': 'glm4'}
bad = [f'{k}={kv.get(k)!r}, want {v!r}' for k, v in want.items() if kv.get(k) != v]
toks = kv.get('tokenizer.ggml.tokens', [])
if len(toks) != 154880 or len(set(toks)) != 154880: bad.append(f'{len(toks)} tokens, {len(set(toks))} distinct')
elif toks[154820] != '<|endoftext|>' or toks[154822] != '[gMASK]': bad.append('special tokens misplaced')
if nt != 34: bad.append(f'{nt} tensors')
for b in bad: print('FAIL metadata:', b)
sys.exit(1 if bad else 0)
EOF

out=$("$BIN" run -m "$tmp/q4.gguf" --ids 1,2,3 -n 2 --backend ref --print-ids --ignore-eos); rc=$?
[ $rc -eq 0 ] || { echo "FAIL q4 run: exit $rc"; fail=1; }
check q4-run "$out" '^[0-9]+ [0-9]+$'

out=$("$BIN" quantize --random --like glm-4.7-flash --type q8_0 "$tmp/q8.gguf" --layers 2 --seed 7 --threads 2); rc=$?
[ $rc -eq 0 ] || { echo "FAIL q8_0: exit $rc"; fail=1; }
out=$("$BIN" info "$tmp/q8.gguf"); rc=$?
check q8-info "$out" "${shapes[@]}" 'type f32 +11 tensors' 'type q8_0 +23 tensors'
out=$("$BIN" run -m "$tmp/q8.gguf" --ids 1,2,3 -n 2 --backend ref --print-ids --ignore-eos); rc=$?
[ $rc -eq 0 ] || { echo "FAIL q8 run: exit $rc"; fail=1; }
check q8-run "$out" '^[0-9]+ [0-9]+$'

# Same seed, one thread: the same bytes; another seed: different bytes.
"$BIN" quantize --random --like glm-4.7-flash --type q8_0 "$tmp/q8b.gguf" --layers 2 --seed 7 --threads 1 >/dev/null ||
  { echo "FAIL q8 threads 1"; fail=1; }
cmp -s "$tmp/q8.gguf" "$tmp/q8b.gguf" || { echo "FAIL: the bytes depend on the thread count"; fail=1; }
"$BIN" quantize --random --like glm-4.7-flash --type q8_0 "$tmp/q8b.gguf" --layers 2 --seed 8 --threads 2 >/dev/null ||
  { echo "FAIL q8 seed 8"; fail=1; }
cmp -s "$tmp/q8.gguf" "$tmp/q8b.gguf" && { echo "FAIL: seeds 7 and 8 gave the same file"; fail=1; }
rm -f "$tmp/q8.gguf" "$tmp/q8b.gguf"

# --mtp: block_count 2 = 1 decoder layer + the nextn layer (18 MoE + 6 nextn tensors).
out=$("$BIN" quantize --random --like glm-4.7-flash --type q8_0 "$tmp/mtp.gguf" --layers 1 --mtp --threads 2); rc=$?
[ $rc -eq 0 ] || { echo "FAIL mtp: exit $rc"; fail=1; }
out=$("$BIN" info "$tmp/mtp.gguf")
check mtp-info "$out" '^mtp: present \(layer 1\)' '^tensors: 40 ' 'num_nextn_predict_layers +1$'
rm -f "$tmp/mtp.gguf"

for args in "--random --type q8_0 $tmp/x.gguf" "--random --like llama --type q8_0 $tmp/x.gguf" \
            "--random --like glm-4.7-flash --type q8_0 $tmp/x.gguf --layers 0" \
            "--random --like glm-4.7-flash --type q8_0 $tmp/x.gguf --layers 48" \
            "--random --like glm-4.7-flash --type q8_0 $tmp/x.gguf --seed -1" \
            "--random --like glm-4.7-flash --type q8_0 a.gguf b.gguf" \
            "--random --like glm-4.7-flash $tmp/x.gguf" "--layers 2 in.gguf out.gguf --type q8_0"; do
  # shellcheck disable=SC2086
  "$BIN" quantize $args >/dev/null 2>&1; rc=$?
  [ $rc -eq 2 ] || { echo "FAIL usage '$args': exit $rc, want 2"; fail=1; }
done
err=$("$BIN" quantize --random --like glm-4.7-flash --type q8_0 "$tmp/nodir/x.gguf" --layers 1 2>&1); rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <<<"$err")" -eq 1 ] || { echo "FAIL unwritable: exit $rc: $err"; fail=1; }
[ -z "$(ls -A "$tmp" | grep -v q4.gguf)" ] || { echo "FAIL: leftovers: $(ls -A "$tmp")"; fail=1; }

[ $fail -eq 0 ] && echo "test_random_model: all checks passed"
exit $fail
