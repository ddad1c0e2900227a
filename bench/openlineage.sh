#!/usr/bin/env bash
# bench/openlineage.sh
#
# What OpenLineage delivery adds to a run. With pipeline.openlineage_url set,
# each run builds its START and COMPLETE events and writes them to the outbox
# in its own transaction (src/recorders/openlineage_outbox.c); the sender
# worker posts them afterwards, outside the run. This times, on one
# throwaway server that preloads pg_pipeline (a collector on 127.0.0.1
# takes the posts: scripts/demo_collector.py):
#   (a) a run with nothing new, and
#   (b) a run with 10 new rows,
# of a pipeline fed by a view with a join, delivery off and on, in BLOCKS
# (10) alternated blocks of RUNS (20) runs each (the setting is a server
# one: each block reloads it), and reports the medians and the difference.
# Writes the "OpenLineage delivery" section of docs/benchmarks.md. Reports;
# does not fail on timings.
# Usage: bash bench/openlineage.sh   (as root; about a minute)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/lib.sh"
BLOCKS=${BENCH_BLOCKS:-10}
RUNS=${BENCH_RUNS:-20}
REPORT=${BENCH_REPORT:-$PP_ROOT/docs/benchmarks.md}

if [ "${1:-}" = "--in-cluster" ]; then
    psql_b() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
    psql_b -c "
        CREATE EXTENSION pg_pipeline;
        CREATE SCHEMA b;
        CREATE TABLE b.customers (customer_id int PRIMARY KEY, region text NOT NULL);
        CREATE TABLE b.orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount numeric NOT NULL,
                               seq bigint NOT NULL);
        CREATE INDEX ON b.orders (seq);
        INSERT INTO b.customers SELECT g, 'r' || g % 5 FROM generate_series(1, 100) g;
        INSERT INTO b.orders SELECT g, g % 100 + 1, g, g FROM generate_series(1, 10000) g;
        CREATE VIEW b.orders_v AS
            SELECT o.id, c.region, o.amount * 2 AS amount2, o.seq
              FROM b.orders o JOIN b.customers c USING (customer_id) WHERE o.amount > 0;
        SELECT pipeline.create_pipeline('bench_ol', 'b.orders_v', 'b.orders_core',
                                        unique_key => '{id}', incremental_column => 'seq');
        SELECT pipeline.run('bench_ol');"
    out=$(mktemp -t pp-bench-ol.XXXXXX)
    next=10000
    for ((b = 0; b < BLOCKS * 2; b++)); do
        if ((b % 2 == 0)); then mode=off; url=''; else mode=on; url=$COLLECTOR_URL; fi
        psql_b -c "ALTER SYSTEM SET pipeline.openlineage_url = '$url'" -c "SELECT pg_reload_conf()" >/dev/null
        sleep 0.3
        script=$(mktemp -t pp-bench-ol-sql.XXXXXX)
        {
            echo "SELECT pipeline.run('bench_ol');"   # warm-up after the reload
            printf '%s\n' '\timing on'
            for ((i = 0; i < RUNS; i++)); do
                echo "SELECT pipeline.run('bench_ol');"
                echo "INSERT INTO b.orders SELECT g, g % 100 + 1, g, g FROM generate_series($((next + 1)), $((next + 10))) g;"
                echo "SELECT pipeline.run('bench_ol');"
                next=$((next + 10))
            done
        } >"$script"
        psql_b -f "$script" | awk -v m="$mode" '/^Time: / { n++; if (n % 3 == 1) print m, "idle", $2; else if (n % 3 == 0) print m, "ten", $2 }' >>"$out"
        rm -f "$script"
    done
    psql_b -c "ALTER SYSTEM RESET pipeline.openlineage_url" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1
    psql -X -qAt -c "SELECT state || ' ' || count(*) FROM pipeline.openlineage_deliveries GROUP BY state ORDER BY 1" >"$out.states"
    cp "$out" "$OUT_FILE"
    cp "$out.states" "$OUT_FILE.states"
    rm -f "$out" "$out.states"
    exit 0
fi

cd "$PP_ROOT"
pp_install_deps
pp_build all install
collector_port=$((20000 + RANDOM % 20000))
collected=$(mktemp -t pp-bench-collected.XXXXXX)
python3 "$PP_ROOT/scripts/demo_collector.py" "$collector_port" "$collected" &
collector_pid=$!
OUT_FILE=$(mktemp -t pp-bench-ol-times.XXXXXX)
chmod 666 "$OUT_FILE"
trap 'kill $collector_pid 2>/dev/null; rm -f "$collected" "$OUT_FILE" "$OUT_FILE.states"' EXIT
PP_EXTRA_OPTS=(
    -o "shared_preload_libraries=pg_pipeline"
    -o "pipeline.databases=postgres"
    -o "pipeline.check_interval=1"
)
export COLLECTOR_URL="http://127.0.0.1:$collector_port/api/v1/lineage" OUT_FILE BLOCKS RUNS
pp_virtualenv bash "$PP_ROOT/bench/openlineage.sh" --in-cluster

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m() { awk -v a="$1" -v b="$2" '$1 == a && $2 == b { print $3 }' "$OUT_FILE" | median; }
idle_off=$(m off idle); idle_on=$(m on idle); ten_off=$(m off ten); ten_on=$(m on ten)
received=$(grep -c . "$collected" || true)
states=$(tr '\n' ',' <"$OUT_FILE.states" | sed 's/,$//; s/,/, /g')
printf 'nothing new: off %s ms, on %s ms (+%s ms)\n' "$idle_off" "$idle_on" "$(awk -v a="$idle_on" -v b="$idle_off" 'BEGIN { printf "%.3f", a - b }')"
printf '10 new rows: off %s ms, on %s ms (+%s ms)\n' "$ten_off" "$ten_on" "$(awk -v a="$ten_on" -v b="$ten_off" 'BEGIN { printf "%.3f", a - b }')"
printf 'the collector received %s events; outbox: %s\n' "$received" "$states"

section=$(mktemp -t pp-bench-ol-md.XXXXXX)
{
    echo "<!-- openlineage:start -->"
    echo "## OpenLineage delivery"
    echo
    echo "Produced by \`bash bench/openlineage.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, shared with other work)."
    echo "A pipeline fed by a view with a join (10,000 rows), runs timed by psql, delivery off and on in $BLOCKS alternated blocks of $RUNS runs each; with delivery on, each run builds its START and COMPLETE events and writes them to the outbox in its own transaction, and the sender posts them to a collector on 127.0.0.1 meanwhile."
    echo
    echo "| run | delivery off (median, ms) | on (median, ms) | added (ms) |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| nothing new | $idle_off | $idle_on | $(awk -v a="$idle_on" -v b="$idle_off" 'BEGIN { printf "%.3f", a - b }') |"
    echo "| 10 new rows | $ten_off | $ten_on | $(awk -v a="$ten_on" -v b="$ten_off" 'BEGIN { printf "%.3f", a - b }') |"
    echo
    echo "The collector received $received events; the outbox at the end: $states. The cost is a constant per run (a few catalog queries for the facets, the column lineage records, two INSERTs), paid only with \`pipeline.openlineage_url\` set; the posting itself happens in the sender, outside the run."
    echo "<!-- openlineage:end -->"
} >"$section"
python3 - "$REPORT" "$section" <<'PY'
import re, sys
report, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n") + "\n"
text = open(report).read()
# between its markers (bench/run.sh keeps marked sections when it rewrites the page)
pattern = re.compile(r"^<!-- openlineage:start -->\n.*?^<!-- openlineage:end -->\n", re.S | re.M)
text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(report, "w").write(text)
PY
rm -f "$section"
echo "wrote $REPORT"
