#!/usr/bin/env bash
# The default model, golden/default/default-Q8_0.gguf (trained by golden/train/train.py, converted
# by glm47 quantize): its tokenizer gives the pinned ids for four Python prompts, and greedy
# decoding on the reference backend gives, token for token, the 32-token continuations that
# transformers 5.17 computed in float32 from the BF16 weights the GGUF was made from
# (golden/default/summary.json "greedy": end-of-generation ids masked, no KV cache; smallest
# top-2 logit gap 0.053). The same with --mtp (greedy speculative decoding must not change a
# token), which also reports its draft acceptance; and the text path `make run` takes works.
# Run from the repo root with GLM47_BIN set.
set -u
BIN=${GLM47_BIN:-build/glm47}
M=golden/default/default-Q8_0.gguf
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect_eq() { # NAME GOT WANT
  if [ "$2" != "$3" ]; then echo "FAIL $1: got '$2', want '$3'"; fail=1; fi
}

texts=($'import os\n' $'def fibonacci(n):\n' $'class Stack:\n    def __init__(self):\n' $'for i in range(10):\n')
ids=("804 1476 198"
     "322 285 2614 262 64 1945 72 605 323"
     "611 2006 539 279 258 371 739 772 792 290 323"
     "1623 276 296 1164 7 665 323")
want=("505 1107 943 456 3766 198 505 1107 943 456 3766 198 505 1107 943 456 3766 198 505 1107 943 456 3766 198 505 1107 943 456 3766 198 505 1107"
      "258 425 2648 990 309 691 2614 262 64 1945 72 844 376 309 691 2614 262 64 1945 72 844 376 309 198 258 691 2614 262 64 1945 72 844"
      "259 316 392 69 82 269 375 895 258 371 739 2369 792 290 11 409 434 11 755 655 323 259 359 316 392 69 82 1415 434 11 755 655"
      "270 359 463 963 569 16 11 220 17 11 220 18 11 220 19 11 220 20 11 220 21 11 220 22 11 220 23 11 220 24 11 220")

for i in 0 1 2 3; do
  out=$("$BIN" tokenize -m "$M" "${texts[$i]}"); rc=$?
  expect_eq "tokenize $i rc" "$rc" 0
  expect_eq "tokenize $i" "$out" "${ids[$i]}"
  p=$(tr ' ' , <<<"${ids[$i]}")
  out=$("$BIN" run -m "$M" --ids "$p" -n 32 --temp 0 --ignore-eos --print-ids --backend ref 2>"$tmp/err"); rc=$?
  expect_eq "greedy $i rc" "$rc" 0
  expect_eq "greedy $i" "$out" "${want[$i]}"
  out=$("$BIN" run -m "$M" --ids "$p" -n 32 --mtp --ignore-eos --print-ids --backend ref 2>"$tmp/err"); rc=$?
  expect_eq "mtp $i rc" "$rc" 0
  expect_eq "mtp $i" "$out" "${want[$i]}"
  grep -Eq '^glm47 run: prompt [0-9]+ tokens .*; mtp accepted [0-9]+ of [0-9]+ drafts \([0-9.]+%\), [0-9.]+ tokens per forward$' "$tmp/err" \
    || { echo "FAIL mtp $i summary: $(cat "$tmp/err")"; fail=1; }
done

# the text path of `make run`: the prompt's continuation comes out as text
out=$("$BIN" run -m "$M" -p "${texts[2]}" -n 32 --temp 0 --backend ref 2>/dev/null); rc=$?
expect_eq "text rc" "$rc" 0
grep -q 'def __call__(self, \*args, \*\*kwargs):' <<<"$out" || { echo "FAIL text: '$out'"; fail=1; }

[ $fail -eq 0 ] && echo "test_default_model: all passed"
exit $fail
