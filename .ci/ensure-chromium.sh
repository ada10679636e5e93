#!/usr/bin/env sh
# Installs Debian's headless Chromium for the dashboard test when it is missing and we can
# (root with apt-get). Never fails: the test skips with a clear reason when no browser exists.
command -v chromium >/dev/null 2>&1 && exit 0
[ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || exit 0
echo "installing chromium for the dashboard test (apt-get)..." >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || echo "could not install chromium; the dashboard test will skip" >&2
exit 0
