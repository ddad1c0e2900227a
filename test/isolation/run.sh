#!/bin/sh
# test/isolation/run.sh: run the isolation specs (or the ones named) with
# pg_isolation_regress against the server in PGHOST/PGPORT/PGUSER.
# Results and diffs go to ${ISO_OUT:-/tmp/pg_pipeline_isolation}.
set -u
dir=$(cd "$(dirname "$0")" && pwd)
bindir=$(pg_config --pkglibdir)/pgxs/src/test/isolation
out=${ISO_OUT:-/tmp/pg_pipeline_isolation}
mkdir -p "$out"
[ $# -gt 0 ] || set -- $(cd "$dir/specs" && ls *.spec | sed 's/\.spec$//')
exec "$bindir/pg_isolation_regress" --bindir="$(pg_config --bindir)" --inputdir="$dir" --outputdir="$out" \
    --dbname=pg_pipeline_isolation --load-extension=pg_pipeline "$@"
