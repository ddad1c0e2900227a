#!/usr/bin/env bash
# bench/rollup.sh
#
# What a run of a rollup costs when few detail rows changed, against a full
# recompute. Builds this tree, installs it into a directory of its own
# (never into the system's PostgreSQL), starts one throwaway cluster from it
# (bench/private_cluster.sh), loads BENCH_ROWS (10,000,000) detail rows
# (orders over 1,000 days, 10 regions, 50,000 customers, an index on the
# time column) and registers a rollup of them by day and region: count(*),
# sum(amount), count(DISTINCT customer_id). Then, BENCH_REPS (5) times,
# alternated:
#   incremental  1,000 new orders inserted (not timed), then the run that
#                folds them in (10 dirty cells of the newest day);
#   full         pipeline.reset, then the run that recomputes every cell;
#   plain SQL    CREATE TABLE AS the GROUP BY of the whole table: the
#                cheapest full recompute there is.
# Each time is psql's \timing of the statement, commit included, in a fresh
# session after a CHECKPOINT. It checks that the target equals the plain
# recompute at the end. Then the cost of the triggers on the write path:
# INSERT of 100,000 rows in one statement into the source of another
# rollup and into a plain table of the same shape and indexes, both
# started empty, alternated, without a CHECKPOINT before each (whose
# full-page writes would hide the triggers' cost). Prints the medians and
# ratios and writes them between the rollup markers of docs/benchmarks.md.
# Reports; does not fail on timings. Target (issue 10): incremental / full
# recompute <= 1/50 (0.020).
# Usage: bash bench/rollup.sh   (as root; takes several minutes)
set -euo pipefail

BENCH_NAME=rollup BENCH_PORT=55448 BENCH_ROWS=${BENCH_ROWS:-10000000}
# shellcheck source=bench/private_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/private_cluster.sh"

echo "== loading $ROWS detail rows"
q -c "
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA b;
CREATE TABLE b.orders (id bigint PRIMARY KEY, ordered_at timestamptz NOT NULL, region text NOT NULL,
                       customer_id int NOT NULL, amount numeric(12,2) NOT NULL);
INSERT INTO b.orders
SELECT g, timestamptz '2022-01-01 00:00+00' + g * (interval '1000 days' / $ROWS),
       'region-' || (g % 10), ((g * 7919) % 50000)::int, round(((g * 37) % 100000) / 100.0, 2)
  FROM generate_series(1::bigint, $ROWS) g;
CREATE INDEX ON b.orders (ordered_at);
CREATE TABLE b.plain (LIKE b.orders INCLUDING INDEXES);
CREATE TABLE b.captured (LIKE b.orders INCLUDING INDEXES);
CREATE SEQUENCE b.next_id START $((ROWS + 1));
SELECT pipeline.create_pipeline('daily', 'b.orders', 'b.daily', mode => 'rollup',
  rollup => '{\"time_column\": \"ordered_at\", \"bucket\": \"1 day\", \"group_by\": [\"region\"],
              \"measures\": {\"orders\": \"count(*)\", \"revenue\": \"sum(amount)\",
                             \"customers\": \"count(DISTINCT customer_id)\"}}');
SELECT pipeline.create_pipeline('captured', 'b.captured', 'b.captured_daily', mode => 'rollup',
  rollup => '{\"time_column\": \"ordered_at\", \"bucket\": \"1 day\", \"group_by\": [\"region\"],
              \"measures\": {\"orders\": \"count(*)\"}}');" \
  -c 'VACUUM ANALYZE' >/dev/null

PLAIN_SQL="CREATE TABLE b.recomputed AS
SELECT date_bin('1 day', ordered_at, timestamptz '2000-01-01 00:00+00') AS bucket, region,
       count(*) AS orders, sum(amount) AS revenue, count(DISTINCT customer_id) AS customers
  FROM b.orders GROUP BY 1, 2"
# new_orders N: N orders after the newest, in its day, round robin over the regions
new_orders() {
    q -c "INSERT INTO b.orders
          SELECT nextval('b.next_id'), m.t + i * interval '1 second', 'region-' || (i % 10), i, 1
            FROM (SELECT max(ordered_at) AS t FROM b.orders) m, generate_series(1, $1) i" >/dev/null
}

echo "== first run (every cell)"
first=$(timed "SELECT pipeline.run('daily')")
echo "== $REPS times each, alternated: incremental run after 1,000 new rows, full recompute, plain SQL"
inc=(); full=(); plain=()
for ((n = 1; n <= REPS; n++)); do
    new_orders 1000
    inc+=("$(timed "SELECT pipeline.run('daily')")")
    q -c "SELECT pipeline.reset('daily')" >/dev/null
    full+=("$(timed "SELECT pipeline.run('daily')")")
    q -c "DROP TABLE IF EXISTS b.recomputed" >/dev/null
    plain+=("$(timed "$PLAIN_SQL")")
done
im=$(median "${inc[@]}"); fm=$(median "${full[@]}"); pm=$(median "${plain[@]}")
ri=$(ratio "$im" "$fm"); rp=$(ratio "$im" "$pm")
last=$(q -c "SELECT format('read %s, cells inserted %s, updated %s, deleted %s, unchanged %s', rows_read,
                           rows_inserted, rows_updated, rows_deleted, rows_unchanged)
               FROM pipeline.runs WHERE pipeline_name = 'daily' AND rows_read < 100000
              ORDER BY run_id DESC LIMIT 1")
new_orders 1000
q -c "SELECT pipeline.run('daily')" >/dev/null
q -c "DROP TABLE IF EXISTS b.recomputed" -c "$PLAIN_SQL" >/dev/null
differ=$(q -c "SELECT count(*) FROM ((SELECT * FROM b.recomputed EXCEPT ALL SELECT * FROM b.daily)
                UNION ALL (SELECT * FROM b.daily EXCEPT ALL SELECT * FROM b.recomputed)) d")
cells=$(q -c "SELECT count(*) FROM b.daily")
echo "   first run:    $first ms"
echo "   incremental:  ${inc[*]} -> median $im ms ($last)"
echo "   full:         ${full[*]} -> median $fm ms   incremental / full $ri (target <= 0.020)"
echo "   plain SQL:    ${plain[*]} -> median $pm ms   incremental / plain $rp"
echo "   target vs plain recompute: $differ rows differ ($cells cells)"

echo "== write path: INSERT of 100,000 rows, captured source / plain table, $REPS times, alternated"
# no CHECKPOINT before each: its full-page writes would dominate both
timed_warm() { q -c '\timing on' -c "$1" | awk '/^Time: / { t = $2 } END { print t }'; }
wc=(); wp=()
for ((n = 0; n <= REPS; n++)); do
    ins="SELECT nextval('b.next_id'), timestamptz '2025-01-01 00:00+00' + (i + $n * 100000) * interval '1 second',
                'region-' || (i % 10), i, 1 FROM generate_series(1, 100000) i"
    c=$(timed_warm "INSERT INTO b.captured $ins")
    p=$(timed_warm "INSERT INTO b.plain $ins")
    ((n == 0)) && continue      # a warm-up pair, not counted
    wc+=("$c"); wp+=("$p")
done
wcm=$(median "${wc[@]}"); wpm=$(median "${wp[@]}"); rw=$(ratio "$wcm" "$wpm")
echo "   captured: ${wc[*]} -> median $wcm ms;  plain: ${wp[*]} -> median $wpm ms;  ratio $rw"

section=$(cat <<MD
<!-- rollup:start -->
## Rollups: a run after 1,000 new rows against a full recompute

$(written_by rollup.sh)

| $ROWS detail rows, rollup by day and region ($cells cells) | median ms | incremental / it | target |
| --- | ---: | ---: | --- |
| incremental run after 1,000 new rows | $im | | |
| full recompute (reset, run) | $fm | $ri | ≤ 0.020 (1/50) |
| plain SQL: CREATE TABLE AS the GROUP BY | $pm | $rp | |

Runs (ms, in order): incremental ${inc[*]}; full ${full[*]}; plain SQL ${plain[*]}.
The first run (every cell, into the empty target) took $first ms. The last
incremental run: $last. After the runs the target and the plain recompute
differ in $differ rows.

Write path: an INSERT of 100,000 rows in one statement into the source of a
rollup, whose statement triggers write the dirty cells (one row per cell and
statement), takes $wcm ms (median of ${wc[*]}), into a plain table of the
same shape and indexes $wpm ms (${wp[*]}): $rw×. Both started empty and take
the same rows, alternated, after a warm-up pair, without a CHECKPOINT before
each.

Method: [bench/rollup.sh](../bench/rollup.sh). The source has an index on the
time column (create_pipeline advises one), so that each dirty cell is
recomputed from an index range scan of its bucket (LATERAL, one per cell):
the cost follows the cells touched (10 here, each reading its day's 10,000
rows from the index and keeping its region's 1,000), not the table. The full recompute
reads and sorts the whole table for count(DISTINCT); the plain SQL is the same
GROUP BY without the MERGE. $REPS runs each, alternated, each in a fresh
session after a CHECKPOINT; shared_buffers 1GB, autovacuum off, no parallel
query.
<!-- rollup:end -->
MD
)
write_section rollup "$section"
