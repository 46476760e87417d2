#!/usr/bin/env bash
# On the GPU host, in one call: llama.cpp (Debian sid's llama-bench with ggml's Vulkan backend,
# from .deb files carried along) and glm47 measured on the same synthetic full-size
# GLM-4.7-Flash Q4_K_M file, written there by glm47 quantize --random. Results go to OUT_DIR as
# text files (versions, GPU, the file, each bench); the numbers belong in bench/RESULTS.md.
# Usage: tools/llama-bench-gpu.sh DEBDIR GLM47_BIN OUT_DIR [SECONDS_PER_BENCH]
# DEBDIR holds the .deb files tools/llama-fetch.sh downloaded (its DIR/debs; the -dev ones are
# not needed). Needs ~18 GiB free in /tmp.
set -u
debs=${1:?usage: tools/llama-bench-gpu.sh DEBDIR GLM47_BIN OUT_DIR [SECONDS_PER_BENCH]}
glm=${2:?usage: tools/llama-bench-gpu.sh DEBDIR GLM47_BIN OUT_DIR [SECONDS_PER_BENCH]}
out=${3:?usage: tools/llama-bench-gpu.sh DEBDIR GLM47_BIN OUT_DIR [SECONDS_PER_BENCH]}
limit=${4:-150}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out" || exit 1
root=/tmp/llama-root
model=/tmp/glm47-full-q4_k_m.gguf
bash "$here/llama-fetch.sh" --debs "$debs" "$root" >"$out/versions.txt" 2>&1 || { cat "$out/versions.txt"; exit 1; }
cat "$root/versions.txt" >>"$out/versions.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$out/versions.txt" 2>&1
{ time "$glm" quantize --random --like glm-4.7-flash --type q4_k_m "$model" --threads "$(nproc)"; } >"$out/quantize.txt" 2>&1 ||
    { cat "$out/quantize.txt"; exit 1; }
ls -l "$model" >>"$out/quantize.txt"
# the same test matrix for both: prompt 512, 128 generated, at depth 0 and 4096
{ time timeout "$limit" "$root/run" llama-bench -m "$model" -ngl 99 -p 512 -n 128 -d 0,4096; } >"$out/llama-bench.txt" 2>&1
{ time timeout "$limit" "$glm" bench -m "$model" -p 512 -n 128 -d 0,4096 -r 2 --backend vulkan; } >"$out/glm47-bench.txt" 2>&1
tail -n 20 "$out"/*.txt
