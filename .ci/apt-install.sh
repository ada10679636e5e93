#!/usr/bin/env sh
# Usage: apt-install.sh PACKAGE WHAT. Installs Debian's PACKAGE (needed by WHAT, e.g. "the
# dashboard tests") when we can (root with apt-get). Never fails: WHAT skips with a clear
# reason without it. Each ensure-*.sh checks whether its program is there first.
[ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || exit 0
echo "installing $1 for $2 (apt-get)..." >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1") \
    >/dev/null 2>&1 || echo "could not install $1; $2 will skip" >&2
exit 0
