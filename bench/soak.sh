#!/usr/bin/env bash
# bench/soak.sh
#
# The soak of the reliability suite (test/t/008_soak.pl), for as long as
# asked: pgbench writers keep changing a staging change log while pg_cron and
# the background workers run the three-stage chain staging -> core (merge) ->
# mart (full over an aggregating view); then the chain is drained and every
# stage must equal its plain-SQL reference. Prints the figures (writes/s,
# rows loaded/s, the lag from a write in staging to the end of the last
# stage's run that shows it: p50, p95, p99, max) and records them in the
# "Soak" section of docs/benchmarks.md. Fails when the soak's checks fail.
#
# Usage: bash bench/soak.sh [SECONDS]   (as root; default 600, hours are fine)
# Environment: SOAK_RATE (writer transactions per second, default 500; 0 for
# as fast as they go), SOAK_CLIENTS (writers, default 4), SOAK_KICK_RATE
# (pipeline.trigger calls per second, default 1), BENCH_REPORT (the page).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/lib.sh"

SECONDS_WANTED=${1:-600}
RATE=${SOAK_RATE:-500}
CLIENTS=${SOAK_CLIENTS:-4}
KICK=${SOAK_KICK_RATE:-1}
REPORT=${BENCH_REPORT:-$PP_ROOT/docs/benchmarks.md}
case $SECONDS_WANTED in
    '' | *[!0-9]*) pp_err "usage: bash bench/soak.sh [SECONDS]"; exit 2 ;;
esac

pp_install_deps
pp_build all install >/dev/null

# PostgreSQL's Perl test modules run initdb, which refuses root: run the
# soak as user postgres on a copy of the repository it owns.
work=$(mktemp -d -t pp-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -C "$PP_ROOT" --exclude=./.git --exclude=./results -cf - . | tar -C "$work" -xf -
chown -R postgres:postgres "$work"
figures=$work/soak.figures
out=$work/soak.out
rc=0
(cd "$work" && timeout -k 10 $((SECONDS_WANTED + 900)) \
    runuser -u postgres -- env \
    -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGPASSWORD \
    PATH="$PP_BINDIR:$PATH" TESTDIR="$work" \
    PG_REGRESS="$PP_PGXS/src/test/regress/pg_regress" PG_CONFIG="$PP_BINDIR/pg_config" \
    PP_SOAK_SECONDS="$SECONDS_WANTED" PP_SOAK_RATE="$RATE" PP_SOAK_CLIENTS="$CLIENTS" \
    PP_SOAK_KICK_RATE="$KICK" PP_SOAK_REPORT="$figures" \
    perl -I "$PP_PGXS/src/test/perl" test/t/008_soak.pl) >"$out" 2>&1 || rc=$?
cat "$out"
if [ "$rc" -ne 0 ] || grep -q '^not ok' "$out" || [ ! -s "$figures" ]; then
    pp_err "soak: the soak failed (exit $rc); docs/benchmarks.md is left as it was"
    find "$work/tmp_check/log" -name '*.log' -exec tail -n 40 {} + 2>/dev/null || true
    exit 1
fi

# fig KEY prints a figure of the soak
fig() { sed -n "s/^$1=//p" "$figures"; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
server=$(pg_config --version)
rate_text=$([ "$RATE" = 0 ] && echo "as fast as they go" || echo "at most $RATE transactions/s")
section=$(cat <<EOT
<!-- soak:start -->
## Soak

Written by \`bash bench/soak.sh $SECONDS_WANTED\` on $(date -u '+%Y-%m-%d %H:%M') UTC ($cpu, $(nproc) cores; $server; pipeline.max_workers 4, pipeline.check_interval 1 s).

$(fig clients) pgbench writers ($rate_text) changed the staging change log for $(fig seconds) s while the chain
\`staging.ev\` → \`soak_clean\` (merge by key) → \`core.cur\` → view → \`soak_agg\` (full) → \`mart.buckets\`
ran by itself: \`soak_clean\` from its pg_cron schedule (every minute) and in background workers when
nudged with \`pipeline.trigger\` ($(fig kick) a second), \`soak_agg\` in a worker whenever \`soak_clean\` landed rows.
After the writers stopped and the chain was drained, every stage equalled its plain-SQL reference.

| measure | result |
| --- | ---: |
| writes (pgbench transactions) per second | $(fig writes_per_s) |
| rows loaded into \`core.cur\` per second (inserted + updated + deleted) | $(fig rows_loaded_per_s) |
| runs of \`soak_clean\` by pg_cron / on trigger (succeeded or skipped), of which skipped as already running | $(fig cron_runs) / $(fig trigger_runs), $(fig skipped_runs) |
| runs of \`soak_agg\` started by the workers after an upstream run | $(fig upstream_runs) |
| lag, write in staging → visible in \`mart.buckets\`, p50 | $(fig lag_p50_ms) ms |
| lag, p95 | $(fig lag_p95_ms) ms |
| lag, p99 | $(fig lag_p99_ms) ms |
| lag, slowest | $(fig lag_max_ms) ms |

Lag method: over the $(fig lag_rows) changes written during the soak and still in staging at the end, a
change's lag runs from its \`written_at\` (\`clock_timestamp()\` of the writing statement, a single-statement
transaction) to the \`finished_at\` of the first succeeded \`soak_agg\` run that started after the
\`soak_clean\` run whose watermark window held the change's id finished. It includes the wait for the next
nudge (up to 1 s), the run of both stages and the worker hand-offs. Writers and chain share the two cores.
The test command runs the same soak for 120 s at 200 transactions/s (suite \`soak\`).
<!-- soak:end -->
EOT
)

if [ -f "$REPORT" ] && grep -q '<!-- soak:start -->' "$REPORT"; then
    awk -v section="$section" '
        /<!-- soak:start -->/ { print section; skip = 1; next }
        /<!-- soak:end -->/ { skip = 0; next }
        !skip { print }' "$REPORT" >"$REPORT.new" && mv "$REPORT.new" "$REPORT"
else
    printf '\n%s\n' "$section" >>"$REPORT"
fi

echo "soak: $(fig writes_per_s) writes/s, $(fig rows_loaded_per_s) rows loaded/s; lag p50 $(fig lag_p50_ms) ms, p95 $(fig lag_p95_ms) ms, p99 $(fig lag_p99_ms) ms"
echo "recorded in ${REPORT#"$PP_ROOT"/}"
