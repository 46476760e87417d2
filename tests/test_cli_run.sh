#!/usr/bin/env bash
# glm47 run / eval / perplexity end to end on the dev fixtures: greedy ids equal the golden
# continuation of golden.h5 prompt0 (plain and --mtp), generation stops at an end-of-
# generation id, text generation works, eval's dump matches golden.h5 under glm47 diff, and
# bad input exits 1 (or 2 for usage) with one line. Run from the repo root with GLM47_BIN set.
set -u
BIN=${GLM47_BIN:-build/glm47}
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect_eq() { # NAME GOT WANT
  if [ "$2" != "$3" ]; then echo "FAIL $1: got '$2', want '$3'"; fail=1; fi
}

# golden.h5 /prompt0/tokens and /prompt0/greedy (transformers generate, EOS suppressed)
P0=51,267,264,77,70,320,257,83,262,64,76,82,330,82
G0="437 80 365 28 285 126 139 194 505 8 82 19 82 19 82 19 82 19 82 19 315 480 161 28"

out=$("$BIN" run -m golden/dev/hf --ids $P0 -n 24 --temp 0 --ignore-eos --print-ids); rc=$?
expect_eq "greedy hf rc" "$rc" 0
expect_eq "greedy hf ids" "$out" "$G0"

# --ctx past the model's context length (8192): one line, exit 1
err=$("$BIN" run -m golden/dev/dev-Q8_0.gguf --ids $P0 -n 2 --ctx 8193 2>&1 >/dev/null); rc=$?
expect_eq "ctx past the model rc" "$rc" 1
expect_eq "ctx past the model" "$err" "glm47 run: context 8193 exceeds the model's context length of 8192"

out=$("$BIN" run -m golden/dev/dev-BF16.gguf --ids $P0 -n 24 --temp 0 --ignore-eos --print-ids); rc=$?
expect_eq "greedy bf16 gguf ids" "$out" "$G0"

out=$("$BIN" run -m golden/dev/hf --ids $P0 -n 24 --mtp --ignore-eos --print-ids 2>"$tmp/err"); rc=$?
expect_eq "mtp rc" "$rc" 0
expect_eq "mtp ids" "$out" "$G0"
grep -Eq '^glm47 run: prompt 14 tokens in [0-9.]+ s \([0-9.]+ tok/s\); generated 24 tokens in [0-9.]+ s \([0-9.]+ tok/s\); mtp accepted [0-9]+ of 23 drafts \([0-9.]+%\), [0-9.]+ tokens per forward$' "$tmp/err" \
  || { echo "FAIL mtp summary: $(cat "$tmp/err")"; fail=1; }
# --draft N: chains of N drafts per verify, the same greedy ids; N outside 1..8 is refused
for n in 2 3 4 8; do
  out=$("$BIN" run -m golden/dev/hf --ids $P0 -n 24 --draft $n --ignore-eos --print-ids 2>"$tmp/err"); rc=$?
  expect_eq "draft $n rc" "$rc" 0
  expect_eq "draft $n ids" "$out" "$G0"
  grep -Eq '; mtp accepted [0-9]+ of [0-9]+ drafts \([0-9.]+%\), [0-9.]+ tokens per forward$' "$tmp/err" \
    || { echo "FAIL draft $n summary: $(cat "$tmp/err")"; fail=1; }
done
for n in 0 9 x; do
  "$BIN" run -m golden/dev/hf --ids $P0 -n 4 --draft $n >/dev/null 2>"$tmp/err"; rc=$?
  [ "$rc" -ne 0 ] && [ "$(wc -l <"$tmp/err")" -ge 1 ] && grep -q -- '--draft' "$tmp/err" \
    || { echo "FAIL --draft $n accepted (rc $rc): $(cat "$tmp/err")"; fail=1; }
done

# sampled --mtp: top-k 1 makes p and q one-hot, so it must equal greedy; a seed reproduces
out=$("$BIN" run -m golden/dev/hf --ids $P0 -n 24 --mtp --temp 0.8 --top-k 1 --ignore-eos --print-ids 2>/dev/null)
expect_eq "mtp sampled top-k 1" "$out" "$G0"
out=$("$BIN" run -m golden/dev/hf --ids $P0 -n 24 --draft 3 --temp 0.8 --top-k 1 --ignore-eos --print-ids 2>/dev/null)
expect_eq "draft 3 sampled top-k 1" "$out" "$G0"
a=$("$BIN" run -m golden/dev/dev-Q8_0.gguf --ids $P0 -n 20 --mtp --temp 1 --seed 3 --print-ids 2>/dev/null); rc=$?
b=$("$BIN" run -m golden/dev/dev-Q8_0.gguf --ids $P0 -n 20 --mtp --temp 1 --seed 3 --print-ids 2>/dev/null)
expect_eq "mtp sampled rc" "$rc" 0
expect_eq "mtp sampled seed" "$a" "$b"
[ -n "$a" ] || { echo "FAIL mtp sampled: no output"; fail=1; }

# without --ignore-eos the third greedy token is <|endoftext|> (492, an EOG id): stop there
out=$("$BIN" run -m golden/dev/hf --ids $P0 -n 24 --temp 0 --print-ids); rc=$?
expect_eq "eog stop" "$out" "437 80"
out=$("$BIN" run -m golden/dev/hf --ids $P0 -n 24 --mtp --print-ids 2>/dev/null)
expect_eq "eog stop mtp" "$out" "437 80"
out=$("$BIN" run -m golden/dev/hf --ids $P0 -n 24 --draft 4 --print-ids 2>/dev/null)
expect_eq "eog stop draft 4" "$out" "437 80"

# text in, text out (the Makefile's `make run`), sampled with a seed: reproducible
a=$("$BIN" run -m golden/dev/dev-Q8_0.gguf -p "The quick brown fox" -n 16 --seed 7); rc=$?
b=$("$BIN" run -m golden/dev/dev-Q8_0.gguf -p "The quick brown fox" -n 16 --seed 7)
expect_eq "text rc" "$rc" 0
[ -n "$a" ] || { echo "FAIL text: empty output"; fail=1; }
expect_eq "text same seed" "$a" "$b"

# --chat wraps the text in the template: same ids as the rendered prompt passed via --ids
chat_ids=$("$BIN" tokenize -m golden/dev/dev-Q8_0.gguf "[gMASK]<sop><|user|>Hi there<|assistant|><think>" | tr ' ' ,)
a=$("$BIN" run -m golden/dev/dev-Q8_0.gguf -p "Hi there" --chat -n 6 --temp 0 --ignore-eos --print-ids); rc=$?
b=$("$BIN" run -m golden/dev/dev-Q8_0.gguf --ids "$chat_ids" -n 6 --temp 0 --ignore-eos --print-ids)
expect_eq "chat rc" "$rc" 0
expect_eq "chat == rendered ids" "$a" "$b"
# --no-think: the generation prompt ends in </think> (glm47 template renders the same turn)
printf '[{"role":"user","content":"Hi there"}]' >"$tmp/msgs.json"
nt_ids=$("$BIN" tokenize -m golden/dev/dev-Q8_0.gguf "$("$BIN" template -f "$tmp/msgs.json" --no-think)" | tr ' ' ,)
a=$("$BIN" run -m golden/dev/dev-Q8_0.gguf -p "Hi there" --chat --no-think -n 6 --temp 0 --ignore-eos --print-ids)
b=$("$BIN" run -m golden/dev/dev-Q8_0.gguf --ids "$nt_ids" -n 6 --temp 0 --ignore-eos --print-ids)
expect_eq "chat --no-think == rendered ids" "$a" "$b"
[ "${nt_ids##*,}" = "$("$BIN" tokenize -m golden/dev/dev-Q8_0.gguf '</think>')" ] || { echo "FAIL --no-think prompt end: $nt_ids"; fail=1; }
# the text of --chat: reasoning under [thinking], the answer under [answer], tags not shown
# (greedy on the dev model: "hi" reasons "\rer"; "Hi there" starts with </think>); the summary
"$BIN" run -m golden/dev/dev-Q8_0.gguf -p "hi" --chat -n 12 --temp 0 >"$tmp/think" 2>/dev/null
expect_eq "chat thinking" "$(cat "$tmp/think")" "$(printf '[thinking]\ner')"
"$BIN" run -m golden/dev/dev-Q8_0.gguf -p "Hi there" --chat -n 12 --temp 0 --ignore-eos >"$tmp/think" 2>"$tmp/think.err"
expect_eq "chat answer after </think>: first line" "$(head -1 "$tmp/think")" "[answer]"
grep -q 'think>' "$tmp/think" && { echo "FAIL --chat printed a tag"; fail=1; }
"$BIN" run -m golden/dev/dev-Q8_0.gguf -p "Hi there" --chat --no-think -n 12 --temp 0 --ignore-eos >"$tmp/nothink" 2>/dev/null
expect_eq "chat --no-think: first line" "$(head -1 "$tmp/nothink")" "[answer]"
grep -Eq '^glm47 run: prompt 11 tokens in [0-9.]+ s \([0-9.]+ tok/s\); generated 12 tokens in [0-9.]+ s \([0-9.]+ tok/s\)$' "$tmp/think.err" \
  || { echo "FAIL run summary: $(cat "$tmp/think.err")"; fail=1; }
# model loading: a progress bar on a terminal (script gives the command one), nothing otherwise
grep -q 'loading' "$tmp/think.err" && { echo "FAIL progress bar without a terminal"; fail=1; }
if command -v script >/dev/null; then
  script -qec "$BIN run -m golden/dev/dev-Q8_0.gguf --ids 1,2 -n 2 --print-ids" /dev/null >"$tmp/tty" 2>&1
  grep -Eq 'loading \[#+\] 100% [0-9.]+/[0-9.]+ MiB, ([0-9]+)/\1 tensors' "$tmp/tty" || { echo "FAIL no progress bar on a terminal: $(cat -v "$tmp/tty")"; fail=1; }
  # on Vulkan (lavapipe here) the bar counts the upload
  script -qec "$BIN run -m golden/dev/dev-Q8_0.gguf --ids 1,2 -n 2 --print-ids --device 0" /dev/null >"$tmp/tty" 2>&1
  grep -Eq 'uploading \[#+\] 100% ([0-9.]+)/\1 MiB, ([0-9]+)/\2 tensors' "$tmp/tty" || { echo "FAIL no upload progress bar: $(cat -v "$tmp/tty")"; fail=1; }
fi
"$BIN" run -m golden/dev/hf --ids 1 --chat >/dev/null 2>&1; expect_eq "chat without -p rc" "$?" 2

# eval dump == golden.h5 prompt0 per glm47 diff
"$BIN" eval -m golden/dev/hf --ids $P0 --dump "$tmp/e.h5" 2>/dev/null; rc=$?
expect_eq "eval rc" "$rc" 0
"$BIN" diff golden/dev/golden.h5 "$tmp/e.h5" --group prompt0 --tol 1e-10 >"$tmp/diff" 2>&1
grep -q "within tolerance" "$tmp/diff" || { echo "FAIL eval diff:"; cat "$tmp/diff"; fail=1; }

# perplexity of a short text: a finite number
printf 'The quick brown fox jumps over the lazy dog. It was the best of times.\n' >"$tmp/t.txt"
out=$("$BIN" perplexity -m golden/dev/dev-Q8_0.gguf -f "$tmp/t.txt" --ctx 8); rc=$?
expect_eq "ppl rc" "$rc" 0
grep -Eq '^perplexity: [0-9]+\.[0-9]+ \([0-9]+ tokens scored' <<<"$out" || { echo "FAIL ppl: $out"; fail=1; }

# bad input: one line, exit 1; usage: exit 2; no partial dump
err=$("$BIN" run -m /nonexistent/model.gguf -p hi 2>&1 >/dev/null); rc=$?
expect_eq "bad path rc" "$rc" 1
expect_eq "bad path lines" "$(wc -l <<<"$err")" 1
grep -q nonexistent <<<"$err" || { echo "FAIL bad path message: $err"; fail=1; }
err=$("$BIN" run -m golden/dev/hf --ids 1,99999 2>&1 >/dev/null); rc=$?
expect_eq "bad id rc" "$rc" 1
expect_eq "bad id lines" "$(wc -l <<<"$err")" 1
"$BIN" run --ids 1 >/dev/null 2>&1; expect_eq "usage rc" "$?" 2
err=$("$BIN" run -m golden/dev/hf --ids 1 --backend nope 2>&1 >/dev/null); rc=$?
expect_eq "bad backend rc" "$rc" 1
expect_eq "bad backend lines" "$(wc -l <<<"$err")" 1
"$BIN" eval -m golden/dev/hf --ids 1,99999 --dump "$tmp/bad.h5" >/dev/null 2>&1; expect_eq "eval bad rc" "$?" 1
[ ! -e "$tmp/bad.h5" ] && [ ! -e "$tmp/bad.h5.tmp" ] || { echo "FAIL eval left a partial dump"; fail=1; }
err=$("$BIN" perplexity -m golden/dev/hf -f /nonexistent.txt 2>&1 >/dev/null); rc=$?
expect_eq "ppl bad file rc" "$rc" 1
expect_eq "ppl bad file lines" "$(wc -l <<<"$err")" 1

# --device N runs the Vulkan path on device N (lavapipe here): the same greedy ids as ref;
# a device that does not exist is one line, exit 1
ref_ids=$("$BIN" run -m golden/dev/dev-Q8_0.gguf --ids 1,2,3 -n 6 --print-ids --ignore-eos --backend ref)
vk_ids=$("$BIN" run -m golden/dev/dev-Q8_0.gguf --ids 1,2,3 -n 6 --print-ids --ignore-eos --device 0)
expect_eq "device 0 ids" "$vk_ids" "$ref_ids"
err=$("$BIN" run -m golden/dev/dev-Q8_0.gguf --ids 1 --device 9 2>&1 >/dev/null); rc=$?
expect_eq "bad device rc" "$rc" 1
expect_eq "bad device lines" "$(wc -l <<<"$err")" 1
err=$("$BIN" eval -m golden/dev/hf --ids 1 --dump "$tmp/d.h5" --backend vulkan:x 2>&1 >/dev/null); rc=$?
expect_eq "bad vulkan:N rc" "$rc" 1

[ $fail -eq 0 ] && echo "test_cli_run: all passed"
exit $fail
