#!/usr/bin/env bash
# Fetch llama.cpp as Debian unstable (sid) packages it (the tools incl. llama-perplexity and
# llama-tokenize, libllama, libggml with its
# CPU and Vulkan backends) into a private root DIR, with the C/C++ runtime those binaries need
# (sid's glibc: the build host's Debian 12 glibc is too old for them), and write DIR/run: a
# wrapper that runs one of its tools through that root's own dynamic loader. It also compiles
# tools/llama-greedy.c against the fetched headers into DIR/bin/llama-greedy (when cc exists).
# Nothing is installed on the system: apt works from a private state directory with its own
# sources list. Used by tests/test_llama_greedy.sh (which skips without DIR) and for the
# comparisons in bench/RESULTS.md; never needed by `make check`.
#
# Usage: tools/llama-fetch.sh [--debs DEBDIR] DIR
#   DIR     the root to build (default build/llama); emptied first unless DIR/status says ok
#   --debs  unpack the .deb files of DEBDIR instead of downloading (a host without network)
# Env: LLAMA_FETCH_MIRROR (default http://deb.debian.org/debian), LLAMA_FETCH_SUITE (sid).
# DIR/debs keeps the downloaded packages, DIR/versions.txt their versions.
# Exit: 0 when DIR/run works, 1 with one line on stderr otherwise, 2 for a usage error.
#
# ggml finds its backends (libggml-cpu-<variant>.so, libggml-vulkan.so) by searching the
# directory of the running executable; run through the private loader that is the loader's
# own directory, so the backends are linked next to it.
set -u
debs_from=
if [ "${1:-}" = --debs ]; then
    debs_from=${2:?usage: tools/llama-fetch.sh [--debs DEBDIR] DIR}
    shift 2
fi
dir=${1:-build/llama}
[ $# -le 1 ] || { echo "usage: tools/llama-fetch.sh [--debs DEBDIR] DIR" >&2; exit 2; }
mirror=${LLAMA_FETCH_MIRROR:-http://deb.debian.org/debian}
suite=${LLAMA_FETCH_SUITE:-sid}
src=$(cd "$(dirname "$0")" && pwd)
fail() {
    echo "llama-fetch: $1" >&2
    [ -d "$dir" ] && echo "failed: $1" >"$dir/status"
    exit 1
}

# the packages: llama.cpp's tools and libraries, ggml's backends, the runtime they link
pkgs=(llama.cpp-tools llama.cpp-tools-extra libllama0 libggml0 libggml0-backend-vulkan libllama-dev libggml-dev
      libc6 libgcc-s1 libstdc++6 libgomp1 libssl3t64 zlib1g libvulkan1)

# DIR/bin/llama-greedy from tools/llama-greedy.c, against the root's headers and libraries
# (their own glibc needs are met at run time); skipped without cc or the headers
build_greedy() {
    local lib=$dir/root/usr/lib/x86_64-linux-gnu
    command -v cc >/dev/null 2>&1 && [ -f "$src/llama-greedy.c" ] && [ -f "$dir/root/usr/include/llama.h" ] || return 0
    cc -std=c11 -O2 -Wall -Wextra -I"$dir/root/usr/include" "$src/llama-greedy.c" -o "$dir/bin/llama-greedy" \
        -L"$lib" -lllama -lggml -lggml-base -lm -Wl,--allow-shlib-undefined -Wl,-rpath-link,"$lib" >"$dir/cc.log" 2>&1
}

if [ -f "$dir/status" ] && [ "$(cat "$dir/status")" = ok ] && [ -x "$dir/run" ]; then
    if [ "$src/llama-greedy.c" -nt "$dir/bin/llama-greedy" ]; then
        dir=$(cd "$dir" && pwd)
        build_greedy || fail "cannot compile tools/llama-greedy.c, see $dir/cc.log"
    fi
    echo "llama-fetch: $dir is ready ($(head -n1 "$dir/versions.txt" 2>/dev/null))"
    exit 0
fi
# DIR is ours to empty only when it is new, empty, or one of ours
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ] && [ ! -f "$dir/.llama-root" ]; then
    echo "llama-fetch: $dir exists and is not a root this script made; give a new or empty directory" >&2
    exit 2
fi
[ "$(uname -m)" = x86_64 ] || { echo "llama-fetch: only x86-64 hosts are supported" >&2; exit 1; }
command -v dpkg >/dev/null 2>&1 || { echo "llama-fetch: dpkg not found" >&2; exit 1; }
if [ -n "$debs_from" ]; then
    d=$debs_from
    debs_from=$(cd "$d" 2>/dev/null && pwd) || { echo "llama-fetch: $d: no such directory" >&2; exit 1; }
fi
rm -rf "$dir"
mkdir -p "$dir" || { echo "llama-fetch: cannot create $dir" >&2; exit 1; }
dir=$(cd "$dir" && pwd)
touch "$dir/.llama-root"
mkdir -p "$dir/debs" "$dir/root" "$dir/bin"

if [ -n "$debs_from" ]; then
    cp "$debs_from"/*.deb "$dir/debs/" 2>/dev/null || fail "no .deb files in $debs_from"
else
    command -v apt-get >/dev/null 2>&1 || fail "apt-get not found"
    st=$dir/apt
    mkdir -p "$st/lists/partial" "$st/cache/archives/partial"
    echo "deb $mirror $suite main" >"$st/sources.list"
    o=(-oDir::State::Lists="$st/lists" -oDir::Etc::SourceList="$st/sources.list" -oDir::Etc::SourceParts=/nonexistent
       -oDir::Cache="$st/cache" -oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDebug::NoLocking=1
       -oAcquire::Retries=1 -oAcquire::http::Timeout=20 -oAPT::Sandbox::User=root)
    apt-get "${o[@]}" -qq update >"$dir/apt.log" 2>&1 ||
        fail "apt-get update of Debian $suite failed (no network?), see $dir/apt.log"
    (cd "$dir/debs" && apt-get "${o[@]}" -qq download "${pkgs[@]}" >>"$dir/apt.log" 2>&1) ||
        fail "apt-get download from Debian $suite failed, see $dir/apt.log"
    rm -rf "$st"
fi
for f in "$dir"/debs/*.deb; do
    dpkg -x "$f" "$dir/root" || fail "dpkg -x $f failed"
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$f" >>"$dir/versions.txt"
done
sort -o "$dir/versions.txt" "$dir/versions.txt"
# the llama.cpp line first: the one a result quotes
{ grep '^llama.cpp-tools ' "$dir/versions.txt"; grep -v '^llama.cpp-tools ' "$dir/versions.txt"; } >"$dir/v.tmp" &&
    mv "$dir/v.tmp" "$dir/versions.txt"

lib=$dir/root/usr/lib/x86_64-linux-gnu
[ -x "$lib/ld-linux-x86-64.so.2" ] || fail "the unpacked packages lack the dynamic loader (libc6)"
[ -x "$dir/root/usr/bin/llama-cli" ] || fail "the unpacked packages lack llama.cpp's tools"
n_backends=0
for f in "$lib"/ggml/backends*/libggml-*.so; do
    [ -e "$f" ] || continue
    ln -sf "${f#"$lib"/}" "$lib/$(basename "$f")"
    n_backends=$((n_backends + 1))
done
[ "$n_backends" -gt 0 ] || fail "the unpacked packages hold no ggml backend"

cat >"$dir/run" <<WRAP
#!/bin/sh
# Run a llama.cpp tool of this private root (or bin/llama-greedy) through the root's loader.
# Usage: run TOOL [ARGS...]   e.g. run llama-bench -m model.gguf
t=\${1:?usage: run TOOL [ARGS...]}
shift
p="$dir/root/usr/bin/\$t"
[ -x "$dir/bin/\$t" ] && p="$dir/bin/\$t"
[ -x "\$p" ] || { echo "run: no tool \$t in $dir" >&2; exit 2; }
# the root's libraries first; LD_LIBRARY_PATH after them (it may name a GPU driver's directory)
exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib:$lib/llama\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" "\$p" "\$@"
WRAP
chmod +x "$dir/run"
"$dir/run" llama-cli --version >"$dir/check.log" 2>&1 || fail "the fetched llama-cli does not run, see $dir/check.log"

build_greedy || fail "cannot compile tools/llama-greedy.c, see $dir/cc.log"
echo ok >"$dir/status"
echo "llama-fetch: $(head -n1 "$dir/versions.txt") in $dir"
