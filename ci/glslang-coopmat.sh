#!/usr/bin/env bash
# Fetch a glslang that compiles GL_KHR_cooperative_matrix (Debian 13's glslang-tools; Debian
# 12's 12.0 cannot) into a private root DIR, with the C/C++ runtime it needs (glibc 2.38+),
# and write DIR/glslangValidator: a wrapper that runs it through that root's own dynamic
# loader. Nothing is installed on the system: apt works from a private state directory with
# its own sources list. Exits 0 (2 only for a bad DIR); DIR/status says "ok" or why the fetch
# failed, and without the wrapper the build keeps the plain tiled matmul (no tensor-core
# shaders).
# Usage: ci/glslang-coopmat.sh DIR   (DIR ends in /glslang15; the Makefile uses $(BUILD)/glslang15)
set -u
dir=${1:?usage: ci/glslang-coopmat.sh DIR}
version=${GLSLANG_CM_VERSION:-15.1.0+1.4.309.0-1} # pinned: the same SPIR-V on every build
mirror=${GLSLANG_CM_MIRROR:-http://deb.debian.org/debian}
case "$dir" in */glslang15) ;; *) echo "glslang-coopmat: DIR must end in /glslang15 (it is emptied first)" >&2; exit 2 ;; esac
rm -rf "$dir"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
fail() {
  echo "glslang-coopmat: $1; tensor-core (cooperative matrix) shaders are not built, the plain tiled matmul is used" >&2
  echo "unavailable: $1" >"$dir/status"
  exit 0
}
command -v apt-get >/dev/null 2>&1 || fail "apt-get not found"
command -v dpkg >/dev/null 2>&1 || fail "dpkg not found"
st=$dir/apt
mkdir -p "$st/lists/partial" "$st/cache/archives/partial" "$dir/debs" "$dir/root"
echo "deb $mirror trixie main" >"$st/sources.list"
o=(-oDir::State::Lists="$st/lists" -oDir::Etc::SourceList="$st/sources.list" -oDir::Etc::SourceParts=/nonexistent
   -oDir::Cache="$st/cache" -oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDebug::NoLocking=1
   -oAcquire::Retries=1 -oAcquire::http::Timeout=20 -oAPT::Sandbox::User=root)
[ "$(uname -m)" = x86_64 ] || fail "only x86-64 build hosts are supported"
apt-get "${o[@]}" -qq update >"$dir/apt.log" 2>&1 || fail "apt-get update of Debian trixie failed (no network?), see $dir/apt.log"
pkgs=("glslang-tools=$version" libc6 libstdc++6 libgcc-s1)
if ! (cd "$dir/debs" && apt-get "${o[@]}" -qq download "${pkgs[@]}" >>"$dir/apt.log" 2>&1); then
  fail "apt-get download ${pkgs[*]} failed, see $dir/apt.log"
fi
for f in "$dir"/debs/*.deb; do
  dpkg -x "$f" "$dir/root" || fail "dpkg -x $f failed"
done
lib=$dir/root/usr/lib/x86_64-linux-gnu
[ -x "$lib/ld-linux-x86-64.so.2" ] && [ -x "$dir/root/usr/bin/glslang" ] || fail "unpacked packages lack the loader or glslang"
cat >"$dir/glslangValidator" <<WRAP
#!/bin/sh
exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib" "$dir/root/usr/bin/glslang" "\$@"
WRAP
chmod +x "$dir/glslangValidator"
if ! "$dir/glslangValidator" --version >>"$dir/apt.log" 2>&1; then
  rm -f "$dir/glslangValidator"
  fail "the fetched glslang does not run, see $dir/apt.log"
fi
rm -rf "$dir/debs" "$st"
echo ok >"$dir/status"
echo "glslang-coopmat: glslang-tools $version in $dir"
