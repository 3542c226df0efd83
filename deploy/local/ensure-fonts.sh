#!/usr/bin/env bash
# The TrueType family pdfgen sets reports in (services/pdfgen/fonts.py), from Debian's
# fonts-nanum as in the pdfgen image. Used by `make run` and `make test`; a no-op when present.
set -euo pipefail

if [ ! -f /usr/share/fonts/truetype/nanum/NanumGothic.ttf ] \
  || [ ! -f /usr/share/fonts/truetype/nanum/NanumGothicBold.ttf ]; then
  echo "installing fonts-nanum from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends fonts-nanum >/dev/null
fi
