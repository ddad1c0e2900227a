#!/bin/sh
# test/pgtap/run.sh: run every pgTAP file (or the ones given) against the
# server in PGHOST/PGPORT/PGUSER, each in a fresh database of its own.
# Needs a server with max_worker_processes high enough for the failed-run
# recorder (e.g. pg_virtualenv -o max_worker_processes=16 test/pgtap/run.sh).
# Exit status: non-zero when any file fails.
set -u
dir=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- "$dir"/*.sql
status=0
for f in "$@"; do
    db="pgtap_$(basename "$f" .sql | tr -c 'a-zA-Z0-9_\n' '_')"
    dropdb --if-exists "$db" >/dev/null 2>&1
    createdb "$db" || { status=1; continue; }
    pg_prove --verbose --failures -d "$db" "$f" || status=1
    dropdb --if-exists "$db" >/dev/null 2>&1
done
exit $status
