#!/bin/sh
# Installs the pinned Zig (PyPI package ziglang==0.15.1) into .toolchain/zig, once.
# Skips the download when a zig of exactly that version is already usable.
set -e
want=0.15.1
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.toolchain/zig"
if [ -x "$dest/ziglang/zig" ] && [ "$("$dest/ziglang/zig" version)" = "$want" ]; then exit 0; fi
if [ -z "$HAKMEM_ZIG" ] && command -v zig >/dev/null 2>&1 && [ "$(zig version 2>/dev/null)" = "$want" ]; then
  echo "hakmem: using zig $want from PATH ($(command -v zig))"; exit 0
fi
py=$(command -v python3 || command -v python || true)
if [ -z "$py" ]; then echo "hakmem: python3 with pip is needed to install zig $want (pip install ziglang==$want)" >&2; exit 1; fi
echo "hakmem: installing zig $want into .toolchain/zig (PyPI ziglang==$want)"
rm -rf "$dest"
"$py" -m pip install --disable-pip-version-check --no-warn-script-location --quiet --target "$dest" "ziglang==$want"
"$dest/ziglang/zig" version >/dev/null
