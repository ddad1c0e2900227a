#!/usr/bin/env bash
# bench/scale.sh
#
# Cost follows the increment, not the size (issue 12). Builds this tree,
# installs it into a directory of its own (never into the system's
# PostgreSQL), starts one throwaway cluster from it that preloads
# pg_pipeline, and measures, as ratios within this one run:
#   (a) 10,000 new rows into a target of 100,000 / 1,000,000 / 10,000,000
#       rows (BENCH_SIZES), each size its own source and merge pipeline, the
#       sizes alternated, BENCH_REPS (5) times: the median per size, and the
#       ratio largest / smallest (target <= 1.5); beside each pipeline, the
#       hand-written MERGE of the same window into a twin of its target
#       (same rows, same indexes), alternated with it: the ratio the
#       hardware gives hand-written SQL, which no pipeline can beat;
#   (b) 1,000 / 10,000 / 100,000 new rows (BENCH_INCREMENTS) into the
#       1,000,000-row target, alternated: run time against rows;
#   (c) with 1,000 and then 10,000 registered pipelines (BENCH_PIPELINES):
#       a run with nothing new (median of 200), create_pipeline (median of
#       the last 100 created), refresh_lineage of one pipeline, and the
#       launcher's pass over the idle pipelines (pipeline.launcher_status,
#       the passes of 40 s once 20 s went by after the creates).
# Draws two PNG plots with gnuplot (run time against new rows, and against
# target size) into docs/img/, and writes the results between the scale
# markers of docs/benchmarks.md. Reports; does not fail on timings.
# Usage: bash bench/scale.sh   (as root; takes a while: the 10,000,000-row
# target is loaded first; BENCH_SIZES="100000 1000000" for a short run)
set -euo pipefail

BENCH_NAME=scale BENCH_PORT=55447
BENCH_CONF="shared_preload_libraries = 'pg_pipeline'"
# shellcheck source=bench/private_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/private_cluster.sh"

read -r -a SIZES <<<"${BENCH_SIZES:-100000 1000000 10000000}"
read -r -a INCREMENTS <<<"${BENCH_INCREMENTS:-1000 10000 100000}"
read -r -a COUNTS <<<"${BENCH_PIPELINES:-1000 10000}"
INCREMENT=10000
IDLE_RUNS=200
IMG=$ROOT/docs/img
mkdir -p "$IMG"
command -v gnuplot >/dev/null || apt-get install -y -qq gnuplot-nox >/dev/null

# the source of a size: s<rows>, keys 1..rows, its pipeline p<rows>
q -c "CREATE EXTENSION pg_pipeline" -c "CREATE SCHEMA b" -c "CREATE SEQUENCE b.seq" >/dev/null
# hand_merge(size): what one writes by hand for the same run, its watermark
# kept in a table and moved in the same transaction as the data
q -c "CREATE TABLE b.hw_mark (size bigint PRIMARY KEY, mark bigint NOT NULL)" >/dev/null
q <<'SQL' >/dev/null
CREATE FUNCTION b.hand_merge(size bigint) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE m bigint; hi bigint;
BEGIN
  SELECT mark INTO m FROM b.hw_mark WHERE hw_mark.size = hand_merge.size FOR UPDATE;
  EXECUTE format('SELECT max(seq) FROM b.s%s', size) INTO hi;
  EXECUTE format($m$
    MERGE INTO b.h%1$s t
    USING (SELECT DISTINCT ON (id) * FROM b.s%1$s WHERE seq > $1 AND seq <= $2 ORDER BY id, seq DESC) s
       ON t.id = s.id
     WHEN MATCHED AND (t.customer, t.amount, t.note) IS DISTINCT FROM (s.customer, s.amount, s.note)
       THEN UPDATE SET customer = s.customer, amount = s.amount, note = s.note, seq = s.seq
     WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.customer, s.amount, s.note, s.seq)$m$, size)
    USING m, hi;
  UPDATE b.hw_mark SET mark = hi WHERE hw_mark.size = hand_merge.size;
END $f$;
SQL
for s in "${SIZES[@]}"; do
    echo "== a source and a target of $s rows"
    q -c "CREATE TABLE b.s$s (id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2) NOT NULL,
                              note text, seq bigint NOT NULL DEFAULT nextval('b.seq'))" \
      -c "INSERT INTO b.s$s (id, customer, amount, note)
          SELECT g, g % 50000, (g % 10000) / 100.0, 'note ' || (g % 1000) FROM generate_series(1, $s) g" \
      -c "CREATE INDEX ON b.s$s (seq)" \
      -c "SELECT pipeline.create_pipeline('p$s', 'b.s$s', 'b.t$s', '{id}', incremental_column => 'seq')" \
      -c "SELECT pipeline.run('p$s')" -c "VACUUM ANALYZE b.s$s" -c "VACUUM ANALYZE b.t$s" >/dev/null
    # the hand-written twin: the same rows and indexes, its own watermark
    q -c "CREATE TABLE b.h$s AS SELECT * FROM b.t$s" -c "ALTER TABLE b.h$s ADD PRIMARY KEY (id)" \
      -c "CREATE INDEX ON b.h$s (seq)" -c "VACUUM ANALYZE b.h$s" \
      -c "INSERT INTO b.hw_mark VALUES ($s, (SELECT max(seq) FROM b.s$s))" >/dev/null
done

# add_rows SIZE N: N new rows into a source, half new keys, half changed ones
add_rows() {
    q -c "INSERT INTO b.s$1 (id, customer, amount, note)
          SELECT id, customer, amount, note FROM (
            SELECT $1 + (SELECT count(*) FROM b.s$1) + g AS id, g % 50000 AS customer, 1.00 AS amount, 'new' AS note
              FROM generate_series(1, $2 / 2) g
            UNION ALL
            SELECT 1 + (g * 7919) % $1, g % 50000, 2.00, 'changed ' || g FROM generate_series(1, $2 - $2 / 2) g) x
          ON CONFLICT (id) DO UPDATE SET amount = excluded.amount, note = excluded.note,
                                         seq = nextval('b.seq')" >/dev/null
}

echo "== (a) $INCREMENT new rows into each size, $REPS times, alternated"
declare -A by_size hw_size med hmed imed
for ((n = 1; n <= REPS; n++)); do
    order=("${SIZES[@]}")
    ((n % 2 == 0)) && order=($(printf '%s\n' "${SIZES[@]}" | tac))
    for s in "${order[@]}"; do
        add_rows "$s" "$INCREMENT"
        # the pipeline and the hand-written MERGE load the same new rows,
        # which goes first alternating with the repetition
        if ((n % 2)); then
            by_size[$s]+="$(timed "SELECT pipeline.run('p$s')") "
            hw_size[$s]+="$(timed "SELECT b.hand_merge($s)") "
        else
            hw_size[$s]+="$(timed "SELECT b.hand_merge($s)") "
            by_size[$s]+="$(timed "SELECT pipeline.run('p$s')") "
        fi
    done
done
small=${SIZES[0]}; large=${SIZES[-1]}
for s in "${SIZES[@]}"; do
    # shellcheck disable=SC2086
    med[$s]=$(median ${by_size[$s]})
    # shellcheck disable=SC2086
    hmed[$s]=$(median ${hw_size[$s]})
    echo "   target $s rows: ${by_size[$s]}-> median ${med[$s]} ms; hand-written ${hw_size[$s]}-> ${hmed[$s]} ms"
done
size_ratio=$(ratio "${med[$large]}" "${med[$small]}")
hw_ratio=$(ratio "${hmed[$large]}" "${hmed[$small]}")
# the twins must hold the same rows, or the comparison is void
for s in "${SIZES[@]}"; do
    diff=$(q -c "SELECT count(*) FROM (SELECT id, customer, amount, note FROM b.t$s
                 EXCEPT ALL SELECT id, customer, amount, note FROM b.h$s) d")
    [ "$diff" = 0 ] || { echo "target $s and its hand-written twin differ ($diff rows)" >&2; exit 1; }
done
echo "   ratio $large / $small: $size_ratio (target <= 1.5); hand-written MERGE: $hw_ratio"

echo "== (b) 1,000 to 100,000 new rows into the ${SIZES[1]:-$small}-row target, alternated"
mid=${SIZES[1]:-$small}
declare -A by_inc
for ((n = 1; n <= REPS; n++)); do
    for i in "${INCREMENTS[@]}"; do
        add_rows "$mid" "$i"
        by_inc[$i]+="$(timed "SELECT pipeline.run('p$mid')") "
    done
done
for i in "${INCREMENTS[@]}"; do
    # shellcheck disable=SC2086
    imed[$i]=$(median ${by_inc[$i]})
    echo "   $i new rows: ${by_inc[$i]}-> median ${imed[$i]} ms"
done

echo "== (c) many pipelines"
# idle_median P: the median of IDLE_RUNS nothing-new runs of pipeline P in one session
idle_median() {
    local script
    script=$(mktemp "$WORK/script.XXXXXX"); chmod 644 "$script"
    { for ((i = 0; i < 10; i++)); do echo "SELECT pipeline.run('$1');"; done
      printf '%s\n' '\timing on'
      for ((i = 0; i < IDLE_RUNS; i++)); do echo "SELECT pipeline.run('$1');"; done; } >"$script"
    # shellcheck disable=SC2046
    median $(q -f "$script" | awk '/^Time: / { print $2 }')
    rm -f "$script"
}
q -c "CREATE TABLE b.many (id bigint PRIMARY KEY, v int, seq bigint NOT NULL DEFAULT nextval('b.seq'))" \
  -c "CREATE INDEX ON b.many (seq)" -c "INSERT INTO b.many (id, v) SELECT g, g FROM generate_series(1, 100) g" >/dev/null
created=0
declare -A idle create lineage pass
for c in "${COUNTS[@]}"; do
    # create pipelines up to c, timing the last 100 creates
    script=$(mktemp "$WORK/script.XXXXXX"); chmod 644 "$script"
    {
        for ((k = created + 1; k <= c; k++)); do
            ((k == c - 99)) && printf '%s\n' '\timing on'
            echo "SELECT pipeline.create_pipeline('m$k', 'b.many', 'b.m$k', '{id}', incremental_column => 'seq');"
        done
    } >"$script"
    # shellcheck disable=SC2046
    create[$c]=$(median $(q -f "$script" | awk '/^Time: / { print $2 }'))
    rm -f "$script"
    created=$c
    # what autovacuum (off here) would do after so many creates
    q -c "ANALYZE" >/dev/null
    q -c "SELECT pipeline.run('m1')" >/dev/null
    idle[$c]=$(idle_median m1)
    lineage[$c]=$(timed "SELECT pipeline.refresh_lineage('m1')")
    # the launcher's passes over idle pipelines: the average of those made
    # in 40 seconds, from 20 seconds from now (its first passes after so
    # many CREATE TABLEs re-plan its kept statements and reload the catalog
    # caches the DDL invalidated: a cost of the creates, not of a pass)
    sleep 20
    before=$(q -c "SELECT passes || ' ' || avg_pass_ms FROM pipeline.launcher_status() LIMIT 1")
    sleep 40
    after=$(q -c "SELECT passes || ' ' || avg_pass_ms FROM pipeline.launcher_status() LIMIT 1")
    pass[$c]=$(awk -v b="$before" -v a="$after" 'BEGIN { split(b, x, " "); split(a, y, " ");
        n = y[1] - x[1]; if (n <= 0) { print "n/a"; exit }
        printf "%.3f", (y[1] * y[2] - x[1] * x[2]) / n }')
    echo "   $c pipelines: nothing new ${idle[$c]} ms, create_pipeline ${create[$c]} ms," \
         "refresh_lineage ${lineage[$c]} ms, launcher pass ${pass[$c]} ms"
done

# plots
{ for i in "${INCREMENTS[@]}"; do echo "$i ${imed[$i]}"; done; } >"$WORK/by_inc.dat"
{ for s in "${SIZES[@]}"; do echo "$s ${med[$s]} ${hmed[$s]}"; done; } >"$WORK/by_size.dat"
gnuplot <<GP
set terminal pngcairo size 640,400 font ",10"
set grid
set logscale x
set key off
set output "$IMG/scale_rows.png"
set title "Run time against new rows (target of $mid rows)"
set xlabel "new rows in the run"
set ylabel "run time, ms"
set logscale y
plot "$WORK/by_inc.dat" using 1:2 with linespoints pt 7 lw 2
set output "$IMG/scale_target.png"
set title "Run time of $INCREMENT new rows against target size"
set xlabel "rows in the target"
unset logscale y
set yrange [0:*]
set key top left
plot "$WORK/by_size.dat" using 1:2 with linespoints pt 7 lw 2 title "pipeline", \
     "$WORK/by_size.dat" using 1:3 with linespoints pt 5 lw 2 title "hand-written MERGE"
GP

size_rows=$(for s in "${SIZES[@]}"; do printf '| %s | %s | %s | %s | %s | %s |\n' "$s" "${med[$s]}" "$(ratio "${med[$s]}" "${med[$small]}")" "${hmed[$s]}" "$(ratio "${hmed[$s]}" "${hmed[$small]}")" "$(ratio "${med[$s]}" "${hmed[$s]}")"; done)
inc_rows=$(for i in "${INCREMENTS[@]}"; do printf '| %s | %s |\n' "$i" "${imed[$i]}"; done)
many_rows=$(for c in "${COUNTS[@]}"; do printf '| %s | %s | %s | %s | %s |\n' "$c" "${idle[$c]}" "${create[$c]}" "${lineage[$c]}" "${pass[$c]}"; done)
section=$(cat <<MD
<!-- scale:start -->
## Cost follows the increment

$(written_by scale.sh)

$INCREMENT new rows (half new keys, half changed ones) into merge targets of three sizes, alternated, $REPS times each:

Beside each pipeline, the MERGE one writes by hand for the same run (the
window's newest row per key, a changed-row filter, its own watermark moved
in the same transaction) loads the same new rows into a twin of the target
(the same rows and indexes), alternated with the pipeline; the twins are
compared row for row afterwards.

| rows in the target | pipeline, median ms | ratio to the smallest | hand-written MERGE, median ms | ratio to the smallest | pipeline / hand-written |
| --- | ---: | ---: | ---: | ---: | ---: |
$size_rows

Target: $large rows / $small rows ≤ 1.5; measured **$size_ratio** for the
pipeline and **$hw_ratio** for the hand-written MERGE of the same rows on
the same machine in the same run. The changed half of the new rows lands
on keys spread over the whole target, so a larger target means more
distinct heap and index pages read and dirtied per run: that part of the
ratio is the hardware's, and the hand-written ratio measures it.

![Run time against target size](img/scale_target.png)

New rows into the $mid-row target, alternated, $REPS times each:

| new rows | median ms |
| --- | ---: |
$inc_rows

![Run time against new rows](img/scale_rows.png)

With many pipelines registered (each its own target; one source):

| pipelines | nothing new, median of $IDLE_RUNS (ms) | create_pipeline, median of the last 100 (ms) | refresh_lineage of one (ms) | launcher pass (ms, average over 40 s, 20 s after the creates) |
| --- | ---: | ---: | ---: | ---: |
$many_rows

Method: [bench/scale.sh](../bench/scale.sh), one throwaway cluster preloading
pg_pipeline (the launcher running), shared_buffers 1GB, autovacuum off (the
catalog is analyzed once the pipelines are created, as autovacuum would), no
parallel query. Every time is psql's \`\\timing\` of one statement, commit
included; the run times of (a) and (b) are taken in a fresh session after a
CHECKPOINT. The source has an index on its incremental column and the
target a primary key on the unique key, so a run reads its window by the
index and merges by the key; the tables say how far its cost is the window's
alone (a first run in a fresh session after a CHECKPOINT reads the target's
index pages from disk, which a larger target has more of).
<!-- scale:end -->
MD
)
write_section scale "$section"
echo "== drew $IMG/scale_rows.png, $IMG/scale_target.png"
