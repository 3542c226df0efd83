#!/usr/bin/env bash
# Regenerate the per-image lock files from pyproject.toml: `requirements/compile.sh [DIR]`.
#
# Each image installs exactly one of these: `docker build --build-arg IMAGE=<name>` installs
# requirements/<name>.txt (Dockerfile). uv keeps the versions a lock already pins (DIR's copy), so
# only what pyproject.toml changed moves; set UV_UPGRADE=1 to move everything to the newest
# allowed versions. The locks are universal (markers, every platform's hashes), so amd64 and
# arm64 images install the same pins.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-requirements}
uv=${UV:-.venv/bin/uv}
export UV_CUSTOM_COMPILE_COMMAND="requirements/compile.sh"

lock() {
    local image=$1
    shift
    "$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
        pyproject.toml "$@" -o "$out/$image.txt"
}

lock gateway --extra gateway
lock analyzer --extra analyzer
lock pusher --extra pusher
lock pdfgen --extra pdfgen
lock platform --extra worker
