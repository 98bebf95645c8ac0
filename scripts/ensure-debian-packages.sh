#!/usr/bin/env bash
# Install the Debian packages the test suite needs when they are missing:
# chromium (browser tests, driven by Playwright), gettext (catalogue checks),
# npm (installs axe-core, the accessibility checker the browser tests inject)
# and wrk (the load generator of `make bench`, whose smoke run is a test).
# With arguments, only those packages (each named like its command):
# `scripts/ensure-debian-packages.sh wrk` is what `make bench` runs.
set -euo pipefail

missing=()
if [ $# -gt 0 ]; then
  for package in "$@"; do
    command -v "$package" >/dev/null || missing+=("$package")
  done
else
  command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v xgettext >/dev/null || missing+=(gettext)
  command -v npm >/dev/null || missing+=(npm)
  command -v wrk >/dev/null || missing+=(wrk)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
