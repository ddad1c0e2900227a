#!/usr/bin/env bash
# bench/initial_load.sh
#
# What the first run of a pipeline costs, against dbt's first run of an
# incremental model, on one server. Builds this tree into a directory of its
# own (never into the system's PostgreSQL), starts one throwaway cluster
# (fsync on), loads a staging table of BENCH_ROWS (1,000,000) rows over
# BENCH_KEYS (900,000) keys (the later rows of a key win), and times,
# BENCH_REPS (5) times each in rotating order, each in a fresh session after
# a CHECKPOINT:
#   engine  SELECT pipeline.run(...) of a merge pipeline just created with
#           create_target => true: its target has the primary key and is
#           empty, so the run inserts the de-duplicated window (initial load)
#           and builds the index on updated_at after the data;
#   dbt     what dbt-postgres runs for the first run of an incremental model
#           with unique_key id and an index on updated_at: in one
#           transaction, CREATE TABLE AS the model's query (DISTINCT ON (id)
#           ... ORDER BY id, updated_at DESC), then CREATE UNIQUE INDEX (id)
#           and CREATE INDEX (updated_at);
#   merge   the same pipeline as engine, but its target has a no-op
#           statement-level UPDATE trigger, which keeps the MERGE (what every
#           first run did before the initial load).
# Checks that the three targets hold the same rows and the same kinds of
# index, prints the medians and ratios, and writes them between the initial
# markers of docs/benchmarks.md. Reports; does not fail on timings.
# Target: engine / dbt <= 1.1.
# Usage: bash bench/initial_load.sh   (as root; takes a few minutes)
set -euo pipefail

BENCH_NAME=initial BENCH_PORT=55445
# shellcheck source=bench/private_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/private_cluster.sh"
KEYS=${BENCH_KEYS:-900000}

echo "== loading $ROWS staging rows over $KEYS keys"
q -c "
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA b;
CREATE TABLE b.src (
    id          bigint NOT NULL,
    customer_id integer NOT NULL,
    status      text NOT NULL,
    amount      numeric(12,2) NOT NULL,
    note        text,
    ordered_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL);
INSERT INTO b.src
SELECT (g * 7) % $KEYS + 1, 1 + (g * 7919) % 100000, (ARRAY['placed', 'paid', 'shipped', 'delivered'])[1 + g % 4],
       round(((g * 37) % 100000) / 100.0, 2), CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ' || (g % 1000) END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 millisecond'
  FROM generate_series(1::bigint, $ROWS) AS g;
CREATE INDEX src_updated_at_idx ON b.src (updated_at);
CREATE FUNCTION b.noop() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NULL; END \$\$;" \
  -c 'VACUUM ANALYZE' >/dev/null

# fresh P: a new pipeline P into a new empty target b.P (created by it)
fresh() {
    q -c "SELECT pipeline.drop_pipeline(name, drop_target => true) FROM pipeline.pipelines WHERE name = '$1'" \
      -c "SELECT pipeline.create_pipeline('$1', 'b.src', 'b.$1', unique_key => ARRAY['id'],
                                          incremental_column => 'updated_at', create_target => true)" >/dev/null 2>&1
}
prepare() {
    case $1 in
        engine) fresh engine ;;
        merge) fresh merge
               q -c "CREATE TRIGGER keep_merge AFTER UPDATE ON b.merge FOR EACH STATEMENT EXECUTE FUNCTION b.noop()" ;;
        dbt) q -c 'DROP TABLE IF EXISTS b.dbt' ;;
    esac
}
DBT="BEGIN;
CREATE TABLE b.dbt AS SELECT DISTINCT ON (id) * FROM b.src ORDER BY id, updated_at DESC;
CREATE UNIQUE INDEX dbt_id_idx ON b.dbt (id);
CREATE INDEX dbt_updated_at_idx ON b.dbt (updated_at);
COMMIT;"
run() {
    case $1 in
        engine) timed "SELECT pipeline.run('engine')" ;;
        merge) timed "SELECT pipeline.run('merge')" ;;
        dbt) timed "$DBT" ;;
    esac
}

echo "== first runs, $REPS times each, in rotating order"
engine=(); dbt=(); merge=()
orders=("engine dbt merge" "dbt merge engine" "merge engine dbt")
for ((n = 0; n < REPS; n++)); do
    for c in ${orders[$((n % 3))]}; do
        prepare "$c"
        t=$(run "$c")
        case $c in engine) engine+=("$t");; dbt) dbt+=("$t");; merge) merge+=("$t");; esac
    done
done
em=$(median "${engine[@]}"); dm=$(median "${dbt[@]}"); mm=$(median "${merge[@]}")
rd=$(ratio "$em" "$dm"); rm=$(ratio "$mm" "$dm"); re=$(ratio "$em" "$mm")
goal=$(awk -v r="$rd" 'BEGIN { print (r <= 1.1 ? "met" : "MISSED") }')
same=$(q -c "SELECT CASE WHEN (SELECT count(*) FROM (SELECT * FROM b.engine EXCEPT ALL SELECT * FROM b.dbt) x)
                  + (SELECT count(*) FROM (SELECT * FROM b.dbt EXCEPT ALL SELECT * FROM b.engine) x)
                  + (SELECT count(*) FROM (SELECT * FROM b.merge EXCEPT ALL SELECT * FROM b.dbt) x)
                  + (SELECT count(*) FROM (SELECT * FROM b.dbt EXCEPT ALL SELECT * FROM b.merge) x) = 0 THEN 'yes' ELSE 'NO' END")
rows=$(q -c "SELECT count(*) FROM b.engine")
indexes=$(q -c "SELECT string_agg(t || ': ' || i, '; ' ORDER BY t) FROM (
                  SELECT c.relname AS t, string_agg(CASE WHEN x.indisunique THEN 'unique ' ELSE '' END
                         || pg_get_indexdef(x.indexrelid, 1, true), ', ' ORDER BY 1) AS i
                    FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
                   WHERE c.relnamespace = 'b'::regnamespace AND c.relname IN ('engine', 'dbt', 'merge')
                   GROUP BY c.relname) s")
counts=$(q -c "SELECT 'read ' || rows_read || ', inserted ' || rows_inserted || ', unchanged ' || rows_unchanged
                FROM pipeline.runs WHERE pipeline_name = 'engine' ORDER BY run_id DESC LIMIT 1")
echo "   engine (initial load): ${engine[*]} -> median $em ms"
echo "   dbt (CTAS + indexes):  ${dbt[*]} -> median $dm ms"
echo "   engine (MERGE):        ${merge[*]} -> median $mm ms"
echo "   engine / dbt $rd (goal <= 1.1: $goal); MERGE / dbt $rm; initial load / MERGE $re"
echo "   same rows in all three: $same ($rows rows); indexes: $indexes; engine run: $counts"

section=$(cat <<MD
<!-- initial:start -->
## Initial load

$(written_by initial_load.sh)

| first run, $ROWS staging rows over $KEYS keys | median ms | ÷ dbt | target |
| --- | ---: | ---: | --- |
| dbt's first run: CREATE TABLE AS, unique index, index on updated_at | $dm | 1 | |
| \`pipeline.run\` into the empty target it created (INSERT, index after) | $em | $rd | ≤ 1.1: $goal |
| \`pipeline.run\` kept on MERGE (a statement trigger on the target) | $mm | $rm | |

Runs (ms, in order): engine ${engine[*]}; dbt ${dbt[*]}; MERGE ${merge[*]}.
The three targets hold the same $rows rows: $same. Indexes after the run: $indexes.
The engine's run counted: $counts.

Method: [bench/initial_load.sh](../bench/initial_load.sh). One server
built from this tree, fsync on, shared_buffers 1GB, work_mem 64MB, no
parallel query. The staging table has no unique index (a key's later rows
win), and an index on \`updated_at\`. Before each engine run the pipeline is
created anew with \`create_target => true\` (primary key on \`id\`, the
index on \`updated_at\` owed until the first load), before each dbt run its
table is dropped; $REPS runs each, in rotating order, each in a fresh session
after a CHECKPOINT, time as psql reports it, commit included. The initial
load is docs/exactly-once.md's "The initial load". Before it (commit 403c9a2,
this script on the same machine on 2026-11-30), the first run was a MERGE into
the target with both its indexes in place: 2.02× dbt's.
<!-- initial:end -->
MD
)
write_section initial "$section"
