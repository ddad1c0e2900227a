#!/usr/bin/env bash
# bench/citus.sh
#
# A 1,000,000-row load on a 3-node Citus cluster (a coordinator and two
# worker nodes on this machine, three data directories started with
# pg_ctl, fsync on) against the hand-written distributed MERGE doing the
# same work. Builds this tree into a directory of its own (never into the
# system's PostgreSQL; Citus comes from the system's, as the citus test
# suite installs it), loads a distributed staging table of BENCH_ROWS
# (1,000,000) rows over BENCH_KEYS (900,000) keys (a key's later rows win)
# and two targets distributed on the key and colocated with it, and times,
# BENCH_REPS (5) times each, alternating, each in a fresh session after a
# CHECKPOINT on every node, with the target truncated before:
#   engine  SELECT pipeline.run(...) of a merge pipeline after reset: the
#           window is the whole table; on Citus the run counts the load
#           with three queries before its MERGE (docs/citus.md) and takes
#           its locks on every node;
#   hand    the MERGE a user would write: the latest row per key, inserted
#           or updated when it differs, in one statement.
# Checks that both targets hold the same rows, prints the medians and their
# ratio, and writes them between the citus markers of docs/benchmarks.md.
# Reports; does not fail on timings.
# Usage: bash bench/citus.sh   (as root; takes a few minutes)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${BENCH_ROWS:-1000000}
KEYS=${BENCH_KEYS:-900000}
REPS=${BENCH_REPS:-5}
REPORT=${BENCH_REPORT:-$ROOT/docs/benchmarks.md}
PORT=${BENCH_PORT:-55470}
PGBIN=$(pg_config --bindir)
WORK=$(mktemp -d /tmp/pp-bench-citus.XXXXXX)
chmod 755 "$WORK"
NODES=(coordinator worker1 worker2)

as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
    for n in "${NODES[@]}"; do
        [ -d "$WORK/$n" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/$n" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

[ -e "$(pg_config --pkglibdir)/citus.so" ] || bash "$ROOT/../shared/citus/install-citus.sh"
echo "== building and installing into $WORK/inst"
make -s -C "$ROOT" >/dev/null
make -s -C "$ROOT" install DESTDIR="$WORK/inst" >/dev/null
chmod -R a+rX "$WORK"
chown postgres "$WORK"
for i in 0 1 2; do
    n=${NODES[$i]}
    libs=citus
    [ "$n" = coordinator ] && libs=citus,pg_pipeline
    as_pg "$PGBIN/initdb" -D "$WORK/$n" -A trust -U postgres >/dev/null
    cat >>"$WORK/$n/postgresql.conf" <<CONF
port = $((PORT + i))
listen_addresses = ''
unix_socket_directories = '$WORK'
extension_destdir = '$WORK/inst'
dynamic_library_path = '$WORK/inst$(pg_config --pkglibdir):\$libdir'
shared_preload_libraries = '$libs'
max_prepared_transactions = 20
citus.node_conninfo = 'sslmode=disable'
max_worker_processes = 16
shared_buffers = 256MB
max_wal_size = 8GB
checkpoint_timeout = 1h
autovacuum = off
max_parallel_workers_per_gather = 0
work_mem = 64MB
CONF
    as_pg "$PGBIN/pg_ctl" -D "$WORK/$n" -l "$WORK/$n.log" -w start >/dev/null
done

# qn I ...: psql on node I (0 the coordinator); q: on the coordinator
qn() { local i=$1; shift; as_pg psql -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p $((PORT + i)) -d postgres "$@"; }
q() { qn 0 "$@"; }
checkpoint() { for i in 0 1 2; do qn "$i" -c CHECKPOINT; done; }
timed() { checkpoint; q -c '\timing on' -c "$1" | awk '/^Time: / { t = $2 } END { print t }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

for i in 0 1 2; do qn "$i" -c 'CREATE EXTENSION citus'; done
q -c "SELECT citus_set_coordinator_host('$WORK', $PORT)" \
  -c "SELECT citus_add_node('$WORK', $((PORT + 1)))" \
  -c "SELECT citus_add_node('$WORK', $((PORT + 2)))" >/dev/null

echo "== loading $ROWS staging rows over $KEYS keys"
q -c 'CREATE EXTENSION pg_pipeline' >/dev/null
q >/dev/null <<SQL
CREATE SCHEMA b;
CREATE TABLE b.src (
    id          bigint NOT NULL,
    customer_id integer NOT NULL,
    status      text NOT NULL,
    amount      numeric(12,2) NOT NULL,
    note        text,
    updated_at  timestamptz NOT NULL);
SELECT create_distributed_table('b.src', 'id');
INSERT INTO b.src
SELECT (g * 7) % $KEYS + 1, 1 + (g * 7919) % 100000, (ARRAY['placed', 'paid', 'shipped', 'delivered'])[1 + g % 4],
       round(((g * 37) % 100000) / 100.0, 2), CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ' || (g % 1000) END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 millisecond'
  FROM generate_series(1::bigint, $ROWS) AS g;
CREATE INDEX ON b.src (updated_at);
CREATE TABLE b.engine (LIKE b.src, PRIMARY KEY (id));
SELECT create_distributed_table('b.engine', 'id', colocate_with => 'b.src');
CREATE TABLE b.hand (LIKE b.src, PRIMARY KEY (id));
SELECT create_distributed_table('b.hand', 'id', colocate_with => 'b.src');
SELECT pipeline.create_pipeline('engine', 'b.src', 'b.engine', unique_key => ARRAY['id'],
                                incremental_column => 'updated_at');
ANALYZE;
SQL

HAND="MERGE INTO b.hand AS t
USING (SELECT DISTINCT ON (id) * FROM b.src ORDER BY id, updated_at DESC) AS s ON t.id = s.id
WHEN MATCHED AND (t.customer_id, t.status, t.amount, t.note) IS DISTINCT FROM (s.customer_id, s.status, s.amount, s.note)
  THEN UPDATE SET customer_id = s.customer_id, status = s.status, amount = s.amount, note = s.note, updated_at = s.updated_at
WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.customer_id, s.status, s.amount, s.note, s.updated_at)"
prepare() {
    case $1 in
        engine) q -c 'TRUNCATE b.engine' -c "SELECT pipeline.reset('engine')" >/dev/null ;;
        hand) q -c 'TRUNCATE b.hand' >/dev/null ;;
    esac
}
run() {
    case $1 in
        engine) timed "SELECT pipeline.run('engine')" ;;
        hand) timed "$HAND" ;;
    esac
}

declare -A T
for rep in $(seq 1 "$REPS"); do
    order="engine hand"
    [ $((rep % 2)) -eq 0 ] && order="hand engine"
    for c in $order; do
        prepare "$c"
        t=$(run "$c")
        T[$c]="${T[$c]:-} $t"
        echo "rep $rep $c: $t ms"
    done
done
# shellcheck disable=SC2086
ME=$(median ${T[engine]})
# shellcheck disable=SC2086
MH=$(median ${T[hand]})
R=$(ratio "$ME" "$MH")
SAME=$(q -c "SELECT CASE WHEN (SELECT count(*) FROM ((TABLE b.engine EXCEPT ALL TABLE b.hand)
                      UNION ALL (TABLE b.hand EXCEPT ALL TABLE b.engine)) d) = 0 THEN 'yes' ELSE 'no' END")
COUNTS=$(q -c "SELECT 'read ' || rows_read || ', inserted ' || rows_inserted || ', unchanged ' || rows_unchanged
                 FROM pipeline.runs WHERE pipeline_name = 'engine' ORDER BY run_id DESC LIMIT 1")
ROWS_T=$(q -c 'SELECT count(*) FROM b.engine')
CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo "engine $ME ms, hand-written $MH ms: $R"

SECTION="<!-- citus:start -->
## Citus

Written by \`bash bench/citus.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($CPU, $(nproc) cores;
$(q -c 'SHOW server_version'), the citus extension at version $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'"); a coordinator and two worker nodes on this machine; fsync on).

| load of $ROWS distributed rows over $KEYS keys into an empty colocated distributed target | median ms | ÷ hand-written |
| --- | ---: | ---: |
| the hand-written distributed MERGE (latest row per key, in one statement) | $MH | 1 |
| \`pipeline.run\` after \`reset\` (counts, locks on every node, MERGE, run record) | $ME | $R |

Runs (ms, in order of repetition): engine${T[engine]}; hand-written${T[hand]}.
Both targets hold the same $ROWS_T rows: $SAME. The run counted: $COUNTS.

Method: [bench/citus.sh](../bench/citus.sh). Three servers from this tree
(pg_pipeline) and the system's PostgreSQL (Citus), on one 2-core machine,
shared_buffers 256MB each, work_mem 64MB, no parallel query; staging and
targets distributed on \`id\` (32 shards) and colocated, so both MERGEs are
pushed down to the shards. $REPS repetitions each, alternating which goes
first, each in a fresh session after a CHECKPOINT on every node, the target
truncated before. The difference is what [citus.md](citus.md#exact-counts-across-nodes)
says a run adds on Citus: two count queries over the window (its rows; the
rows kept, outer-joined with the target for the rows matched there), the
locks taken on every node, and the run's own records.
<!-- citus:end -->"
if grep -q '<!-- citus:start -->' "$REPORT"; then
    awk -v s="$SECTION" -v a='<!-- citus:start -->' -v b='<!-- citus:end -->' \
        '$0 == a { print s; skip = 1 } $0 == b { skip = 0; next } !skip' "$REPORT" >"$REPORT.new" &&
        mv "$REPORT.new" "$REPORT"
else
    printf '\n%s\n' "$SECTION" >>"$REPORT"
fi
echo "== wrote $REPORT"
