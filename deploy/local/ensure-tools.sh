#!/usr/bin/env bash
# Install the operations tools the test suite checks the deployment files with, from Debian's
# packages: promtool + prometheus (rules, config, a real scrape of every pool) and docker-compose
# (`docker-compose config` on docker-compose.yml). A no-op when they are already installed.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's prometheus package may start its own daemon on :9090; the tests run their own.
if pgrep -x prometheus >/dev/null 2>&1 && [ -x /etc/init.d/prometheus ]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
