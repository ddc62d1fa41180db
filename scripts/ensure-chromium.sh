#!/usr/bin/env bash
# Makes sure the status page's browser test (internal/status) can run headless Chromium:
# /usr/bin/chromium, Debian's chromium package. On a Debian machine without it, as root,
# it installs the package; otherwise it says what to do and fails.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: /usr/bin/chromium not found; installing Debian's chromium package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "ensure-chromium: /usr/bin/chromium is missing: install Debian's chromium package (apt-get install chromium) as root" >&2
exit 1
