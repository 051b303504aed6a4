#!/usr/bin/env bash
# Installs what the console's browser test needs: Debian's chromium and the
# npm packages of tests/console (playwright-core, from package-lock.json).
# Called by .ci/run; safe to run again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# chromium, and a Japanese font so the screenshots of the Japanese labels
# show text rather than boxes.
need=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || need+=(fonts-ipafont-gothic)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
cd "$here"
npm ci --no-audit --no-fund --loglevel=error
echo "console browser test: $(/usr/bin/chromium --version 2>/dev/null || echo chromium?), node $(node --version), playwright-core $(node -p "require('playwright-core/package.json').version")"
