#!/usr/bin/env bash
# bench/capture.sh
#
# What change capture costs the captured table's writers. Builds this tree,
# installs it into a directory of its own (never into the system's
# PostgreSQL), starts one throwaway cluster from it, and creates two
# identical tables of BENCH_TABLE_ROWS (100,000) rows, b.plain and b.capt;
# b.capt is captured (pipeline.capture) and read by a merge pipeline. Then
# pgbench runs the same OLTP transaction on each table, alternately (a pair
# of runs, back to back, in alternating order), BENCH_PAIRS (7) times for
# BENCH_SECONDS (10) with 2 clients:
#
#   BEGIN; INSERT a new key; UPDATE a random existing row; DELETE the new key; END;
#
# three changes a transaction, each one more row in b.capt__changes. Between
# runs (untimed) the pipeline loads the changes, they are purged, both
# tables are vacuumed and a CHECKPOINT is taken, as the launcher would keep
# a capture in steady state. It does so twice: with the cluster's default
# durability (synchronous_commit on, each commit waits for its WAL flush),
# and with synchronous_commit off, where the transaction's CPU is all that
# counts and the trigger's share is largest. Prints the median TPS of each
# and the median of the pairs' ratios (captured / plain: each from two runs
# back to back, so that the load of whatever else shares the machine
# cancels out), and writes them between the capture markers of
# docs/benchmarks.md.
# Reports; does not fail on timings. Target (issue 10): captured / plain >= 0.7.
# Usage: bash bench/capture.sh   (as root; takes about 6 minutes)
set -euo pipefail

BENCH_NAME=capture BENCH_PORT=55447
# shellcheck source=bench/private_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/private_cluster.sh"
TABLE_ROWS=${BENCH_TABLE_ROWS:-100000}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
PAIRS=${BENCH_PAIRS:-7}
PGBENCH=$PGBIN/pgbench

echo "== two tables of $TABLE_ROWS rows, one captured"
q -c "
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA b;
CREATE TABLE b.plain (id bigint PRIMARY KEY, k integer NOT NULL, v text, amount numeric(12,2), at timestamptz);
INSERT INTO b.plain SELECT g, g % 1000, md5(g::text), (g % 10000) / 100.0, timestamptz '2024-01-01' + g * interval '1 second'
  FROM generate_series(1, $TABLE_ROWS) g;
CREATE TABLE b.capt (LIKE b.plain INCLUDING ALL);
INSERT INTO b.capt SELECT * FROM b.plain;
SELECT pipeline.create_pipeline('capt', 'b.capt', 'b.capt_copy', capture => true);
SELECT pipeline.run('capt');" -c 'VACUUM ANALYZE' >/dev/null

for t in plain capt; do
    cat >"$WORK/$t.sql" <<SQL
\set id random(1, $TABLE_ROWS)
\set nid random($((TABLE_ROWS + 1)), 1000000000)
BEGIN;
INSERT INTO b.$t VALUES (:nid, 1, 'new', 1.00, now()) ON CONFLICT DO NOTHING;
UPDATE b.$t SET v = md5(v), amount = amount + 1, at = now() WHERE id = :id;
DELETE FROM b.$t WHERE id = :nid;
END;
SQL
done
chmod a+r "$WORK"/*.sql

settle() { q -c "SELECT pipeline.run('capt')" -c "SELECT pipeline.purge_capture('b.capt')" \
             -c 'VACUUM b.plain, b.capt, b.capt__changes' -c 'CHECKPOINT' >/dev/null; }
tps() {  # tps TABLE [PGOPTIONS]
    as_pg env PGOPTIONS="${2:-}" "$PGBENCH" -n -h "$WORK" -p "$PORT" -c 2 -j 2 -T "$SECONDS_PER_RUN" \
        -f "$WORK/$1.sql" postgres 2>/dev/null | awk '/^tps/ { print $3 }'
}

declare -A runs pairs
for mode in durable async; do
    opts=""; [ "$mode" = async ] && opts="-c synchronous_commit=off"
    echo "== $mode: $PAIRS pairs of ${SECONDS_PER_RUN}s runs, alternated"
    for ((n = 1; n <= PAIRS; n++)); do
        if ((n % 2)); then order="plain capt"; else order="capt plain"; fi
        declare -A this=()
        for t in $order; do
            settle
            this[$t]=$(tps "$t" "$opts")
            runs[$mode.$t]+="${this[$t]} "
        done
        pairs[$mode]+="$(ratio "${this[capt]}" "${this[plain]}") "
    done
done
settle

declare -A med
for key in "${!runs[@]}"; do
    # shellcheck disable=SC2086
    med[$key]=$(median ${runs[$key]})
done
# shellcheck disable=SC2086
rd=$(median ${pairs[durable]})
# shellcheck disable=SC2086
ra=$(median ${pairs[async]})
changes=$(q -c "SELECT purged_changes FROM pipeline.captures")
same=$(q -c "SELECT (SELECT count(*) FROM (SELECT id, k, v, amount, at FROM b.capt EXCEPT ALL
                                          SELECT id, k, v, amount, at FROM b.capt_copy) d)
                  + (SELECT count(*) FROM (SELECT id, k, v, amount, at FROM b.capt_copy EXCEPT ALL
                                          SELECT id, k, v, amount, at FROM b.capt) d)")
for mode in durable async; do
    echo "   $mode plain:    ${runs[$mode.plain]}-> median ${med[$mode.plain]} tps"
    echo "   $mode captured: ${runs[$mode.capt]}-> median ${med[$mode.capt]} tps"
done
echo "   pair ratios captured / plain: durable ${pairs[durable]}-> median $rd; synchronous_commit off ${pairs[async]}-> median $ra (target >= 0.7)"
echo "   changes captured, loaded and purged: $changes; rows the copy differs from the table by: $same"

section=$(cat <<MD
<!-- capture:start -->
## Change capture

$(written_by capture.sh)

| pgbench, 2 clients, ${SECONDS_PER_RUN} s a run: INSERT, UPDATE, DELETE a transaction | plain table, median tps | captured table, median tps | ratio (median of pairs) | target |
| --- | ---: | ---: | ---: | --- |
| default durability (synchronous_commit on) | ${med[durable.plain]} | ${med[durable.capt]} | $rd | ≥ 0.7 |
| synchronous_commit off (CPU only) | ${med[async.plain]} | ${med[async.capt]} | $ra | |

Runs (tps, in order of each kind): durable plain ${runs[durable.plain]}; durable captured ${runs[durable.capt]};
off plain ${runs[async.plain]}; off captured ${runs[async.capt]}.
Ratios of the pairs (captured / plain, two runs back to back): durable ${pairs[durable]}; off ${pairs[async]}.
Changes captured, loaded by the pipeline and purged: $changes; the pipeline's target differs from the table by $same rows.

Method: [bench/capture.sh](../bench/capture.sh). Two identical tables of
$TABLE_ROWS rows (primary key \`id\`); one is captured ([capture](capture.md))
and read by a merge pipeline. pgbench runs the same transaction on each, in
$PAIRS pairs of runs of ${SECONDS_PER_RUN} s, back to back, in alternating order: an INSERT of a new key, an
UPDATE of a random row, a DELETE of the new key, so three captured changes a
transaction, each one INSERT into the capture table by the C trigger (one
prepared plan per backend, as the capture table's owner). Between runs,
untimed, the pipeline loads the changes, they are purged, the tables are
vacuumed and a CHECKPOINT is taken. With each commit waiting for its WAL
flush, the capture's extra rows ride on the same flush; with
synchronous_commit off the ratio is the trigger's CPU share. The ratio is
the median of the pairs' ratios: the machine is shared, and its load moves
the absolute numbers between pairs far more than within one. The capture
table has no CHECK constraint: one on the operation cost a third of the
trigger's time (PostgreSQL reads and plans it for every INSERT).
shared_buffers 1GB, autovacuum off, 2 cores shared with other work.
<!-- capture:end -->
MD
)
write_section capture "$section"
