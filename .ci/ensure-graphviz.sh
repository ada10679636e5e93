#!/usr/bin/env sh
# Debian's Graphviz (the `dot` program) for the visualize tests, when it is missing.
command -v dot >/dev/null 2>&1 && exit 0
exec sh "$(dirname "$0")/apt-install.sh" graphviz "the visualize tests"
