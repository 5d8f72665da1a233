#!/usr/bin/env bash
# Installs the pinned Python tools the tests use as real peers, and prints the directory to put on PYTHONPATH.
#
# Today: aiosmtpd, a real SMTP server that receives the e-mail channel's answers in its tests (the SMTP client side
# of those tests is Python's own smtplib); nats-py and protobuf, for the feed subscriber written in Python
# (tests/subscriber/) that proves the published contract can be consumed outside Rust; check-jsonschema (its
# vendored compose-spec schema) and kubernetes-validate (the Kubernetes OpenAPI schemas), which check the
# docker-compose file and the Kubernetes manifests of deploy/ (tests/e2e/deploy.rs). Installed once into
# tools/python/ under the repo (gitignored) with `pip install --target`, which leaves the system's Python alone (and
# is allowed on Debian's externally managed python3). Run again, it only checks. On a fresh Debian machine without
# pip, it installs python3-pip with apt-get when run as root, as scripts/lib/nats-server.sh does. protobuf's wheel
# brings its compiled upb module; the subscriber works as well with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python.
set -euo pipefail

AIOSMTPD_VERSION="1.4.6"
NATS_PY_VERSION="2.16.0"
PROTOBUF_VERSION="7.36.2"
CHECK_JSONSCHEMA_VERSION="0.39.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"
# Their dependencies, pinned too so every machine runs the same code (nats-py needs none without its extras).
PINNED=("aiosmtpd==$AIOSMTPD_VERSION" "atpublic==9.0.0" "attrs==26.1.0" "nats-py==$NATS_PY_VERSION" "protobuf==$PROTOBUF_VERSION"
  "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  "certifi==2026.10.19.post1" "charset-normalizer==3.5.3" "click==8.5.1" "idna==3.20" "importlib-resources==7.1.0"
  "jsonschema==4.26.0" "jsonschema-specifications==2025.9.1" "packaging==26.4" "pyyaml==6.0.4" "referencing==0.37.0"
  "regress==2026.9.1" "requests==2.34.2" "rpds-py==2026.9.1" "ruamel-yaml==0.19.1" "typing-extensions==4.16.0"
  "urllib3==2.8.0")
# What must import for the tools to count as installed.
CHECK="import aiosmtpd, nats, google.protobuf.json_format, check_jsonschema, kubernetes_validate, yaml"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="$repo_root/tools/python"
marker="$target/.installed-$(printf '%s ' "${PINNED[@]}" | sha256sum | cut -c1-16)"

if [ ! -f "$marker" ] || ! PYTHONPATH="$target" python3 -c "$CHECK" >/dev/null 2>&1; then
  echo "installing ${PINNED[*]} from PyPI into $target" >&2
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "python3 and pip are needed for the test tools (aiosmtpd, nats-py, protobuf); installing them with apt-get" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >&2
    else
      echo "python3 with pip is needed to install the test tools (apt-get install python3-pip)" >&2
      exit 1
    fi
  fi
  rm -rf "$target"
  mkdir -p "$target"
  python3 -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore \
    --target "$target" "${PINNED[@]}" >&2
  PYTHONPATH="$target" python3 -c "$CHECK" || { echo "the Python test tools did not install into $target" >&2; exit 1; }
  touch "$marker"
fi
echo "$target"
