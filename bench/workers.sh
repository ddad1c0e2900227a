#!/usr/bin/env bash
# bench/workers.sh
#
# One command, one server with pg_pipeline preloaded (the launcher running):
# measures (1) the latency from an upstream run's commit to the start of the
# downstream run a background worker executes for it, median and 95th
# percentile over BENCH_HOPS (100) hops, and (2) how long one launcher pass
# takes with BENCH_IDLE_PIPELINES (1,000) registered idle pipelines, from
# pipeline.launcher_status(). Prints the figures and records them in the
# "Background workers" section of docs/benchmarks.md. Reports; never fails
# on timings.
# Usage: bash bench/workers.sh   (as root; about a minute)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/lib.sh"

HOPS=${BENCH_HOPS:-100}
IDLE=${BENCH_IDLE_PIPELINES:-1000}
REPORT=${BENCH_REPORT:-$PP_ROOT/docs/benchmarks.md}
OUT=$(mktemp -t pp-bench-workers.XXXXXX)
PP_EXTRA_OPTS=(
    -o "shared_preload_libraries=pg_cron,pg_pipeline"
    -o "cron.database_name=postgres"
    -o "pipeline.databases=postgres"
    -o "pipeline.check_interval=1"
    -o "pipeline.max_workers=4"
    -o "max_worker_processes=32"
    -o "fsync=off"
)

if [ "${1:-}" = "--in-cluster" ]; then
    psql -X -q -v ON_ERROR_STOP=1 -v hops="$HOPS" -v idle="$IDLE" \
        -f "$PP_ROOT/bench/workers.sql" >"$2"
    exit 0
fi

pp_install_deps
pp_build all install >/dev/null
pp_virtualenv bash "$PP_ROOT/bench/workers.sh" --in-cluster "$OUT"

read -r _ hops _ median _ p95 _ max _ complete < <(grep '^HOPS ' "$OUT")
read -r _ idle _ passes _ pass_ms _ max_pass_ms < <(grep '^IDLE ' "$OUT")
rm -f "$OUT"
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
server=$(pg_config --version)

section=$(cat <<EOT
<!-- workers:start -->
## Background workers

Written by \`bash bench/workers.sh\` on $(date -u '+%Y-%m-%d %H:%M') UTC ($cpu, $(nproc) cores; $server; fsync off, pipeline.max_workers 4, pipeline.check_interval 1 s).

| measure | result | target |
| --- | ---: | --- |
| upstream commit → downstream start, median of $hops hops | $median ms | well under 100 ms |
| upstream commit → downstream start, 95th percentile | $p95 ms | |
| upstream commit → downstream start, slowest hop | $max ms | |
| launcher pass with $idle registered idle pipelines (mean of $passes passes) | $pass_ms ms | |
| launcher pass, slowest | $max_pass_ms ms | |

Downstream target complete after the hops: $complete.

Method: [bench/workers.sql](../bench/workers.sql). A hop is an upstream run
(\`pipeline.run\`) in a procedure that commits, then waits for the downstream
run the worker starts; the latency is the downstream run record's
\`started_at\` (written by the worker as it claims the queued run) minus the
upstream run record's \`finished_at\` (written just before its commit): it
includes the commit, the latch wake-up of the launcher, its pass, and the
start of a dynamic background worker. The launcher pass time is read from
\`pipeline.launcher_status()\` over 15 s with \`pipeline.check_interval\` at
1 s, so every pass also checks every pipeline's freshness and timeliness
limits, recovers interrupted runs and prunes history.
<!-- workers:end -->
EOT
)

if [ -f "$REPORT" ] && grep -q '<!-- workers:start -->' "$REPORT"; then
    awk -v section="$section" '
        /<!-- workers:start -->/ { print section; skip = 1; next }
        /<!-- workers:end -->/ { skip = 0; next }
        !skip { print }' "$REPORT" >"$REPORT.new" && mv "$REPORT.new" "$REPORT"
else
    printf '\n%s\n' "$section" >>"$REPORT"
fi

echo "upstream commit -> downstream start: median ${median} ms, p95 ${p95} ms, max ${max} ms over ${hops} hops"
echo "launcher pass with ${idle} idle pipelines: ${pass_ms} ms (slowest ${max_pass_ms} ms, ${passes} passes)"
echo "recorded in ${REPORT#"$PP_ROOT"/}"
