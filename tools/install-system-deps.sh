#!/usr/bin/env bash
# Debian's chromium: renders the mermaid diagrams to SVG at build time and runs the
# browser test. Never a browser download of a test tool's own. A CJK font, so that
# the diagrams' Chinese terms are measured (and screenshots drawn) with real glyphs.
set -euo pipefail
if [ -x /usr/bin/chromium ] && fc-list | grep -qi "wenquanyi"; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium or a CJK font is missing: run 'sudo tools/install-system-deps.sh' (Debian/Ubuntu)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-wqy-microhei >/dev/null
/usr/bin/chromium --version
