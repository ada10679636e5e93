#!/usr/bin/env sh
# Installs Debian's PostgreSQL server programs for the PostgresStore tests when they are missing
# and we can (root with apt-get). The tests start a private server of their own (initdb in a
# temporary folder, a free 127.0.0.1 port, a non-root user) and stop it by its pid; the
# package's own cluster is not used. Never fails: the tests skip with a clear reason without it.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
command -v initdb >/dev/null 2>&1 && exit 0
[ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || exit 0
echo "installing postgresql for the PostgresStore tests (apt-get)..." >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
    >/dev/null 2>&1 || echo "could not install postgresql; the PostgresStore tests will skip" >&2
exit 0
