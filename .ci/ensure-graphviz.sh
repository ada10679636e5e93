#!/usr/bin/env sh
# Installs Debian's Graphviz (the `dot` program) for the visualize tests when it is missing and
# we can (root with apt-get). Never fails: those tests skip with a clear reason without it.
command -v dot >/dev/null 2>&1 && exit 0
[ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || exit 0
echo "installing graphviz for the visualize tests (apt-get)..." >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz) \
    >/dev/null 2>&1 || echo "could not install graphviz; the visualize tests will skip" >&2
exit 0
