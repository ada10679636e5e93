#!/usr/bin/env sh
# Debian's headless Chromium for the dashboard and run page tests, when it is missing.
command -v chromium >/dev/null 2>&1 && exit 0
exec sh "$(dirname "$0")/apt-install.sh" chromium "the dashboard tests"
