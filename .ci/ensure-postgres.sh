#!/usr/bin/env sh
# Debian's PostgreSQL server programs for the PostgresStore tests, when they are missing. The
# tests start a private server of their own (initdb in a temporary folder, a free 127.0.0.1
# port, a non-root user) and stop it by its pid; the package's own cluster is not used.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
command -v initdb >/dev/null 2>&1 && exit 0
exec sh "$(dirname "$0")/apt-install.sh" postgresql "the PostgresStore tests"
