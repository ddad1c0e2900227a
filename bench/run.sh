#!/usr/bin/env bash
# bench/run.sh
#
# One command, one server: times pipeline.run against the hand-written MERGE
# that does the same work on the same data (bench/hand_written.sql), in four
# phases:
#   (a) initial load of BENCH_ROWS (1,000,000) rows into empty targets;
#   (b) a re-run over every row, all unchanged (watermarks reset first);
#   (c) a run after 10% of the rows changed (bench/change10.sql);
#   (d) a run with nothing new, BENCH_IDLE_RUNS (200) times each, alternated
#       in one session; the median latency is reported in ms.
# For (a)-(c) each contender runs BENCH_REPS (5) times, alternately (ABBA
# order), each time into its own identical target, after a CHECKPOINT, in a
# fresh connection; the median is compared. Timings are psql's \timing of the
# one statement (SELECT pipeline.run(...) / SELECT bench.hand_run(...)),
# commit included. Both contenders' targets are checked to be identical
# after every phase. Prints each ratio (engine / hand-written) and writes the
# results to docs/benchmarks.md. Targets: every ratio <= 1.10; nothing-new
# median < 2 ms. Nothing here is a test: it reports, it does not fail on
# timings.
# Usage: bash bench/run.sh   (as root; takes a few minutes)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/lib.sh"

ROWS=${BENCH_ROWS:-1000000}
REPS=${BENCH_REPS:-5}
IDLE_RUNS=${BENCH_IDLE_RUNS:-200}
WARMUP=10
BENCH_DIR=$PP_ROOT/bench
REPORT=${BENCH_REPORT:-$PP_ROOT/docs/benchmarks.md}

# Identical conditions for both contenders: everything fits in shared
# buffers, no checkpoint or autovacuum starts on its own in the middle of a
# timing (the script checkpoints and vacuums between runs itself), no
# parallel query (one core for the benchmark, the other for the rest).
PP_EXTRA_OPTS=(
    -o "shared_buffers=2GB"
    -o "max_wal_size=16GB"
    -o "checkpoint_timeout=1h"
    -o "autovacuum=off"
    -o "max_parallel_workers_per_gather=0"
    -o "work_mem=64MB"
)

psql_b() {
    psql -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# timed SQL: checkpoint, then run SQL in a fresh connection; prints its
# duration in ms as psql's \timing measured it.
timed() {
    psql_b -c 'CHECKPOINT' -c '\timing on' -c "$1" |
        awk '/^Time: / { t = $2 } END { if (t == "") exit 1; print t }'
}

# median of the arguments
median() {
    printf '%s\n' "$@" | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" 'BEGIN { print (r <= 1.10 ? "ok" : "ABOVE 1.10") }'; }

RESULTS=()    # "label|engine ms|hand ms|ratio|verdict|engine runs|hand runs"

# phase LABEL: times both contenders REPS times each, alternately.
phase() {
    local label=$1 n e h engine=() hand=() em hm r
    for ((n = 1; n <= REPS; n++)); do
        if ((n % 2)); then
            e=$(timed "SELECT pipeline.run('bench_engine_$n')")
            h=$(timed "SELECT bench.hand_run('hand_$n')")
        else
            h=$(timed "SELECT bench.hand_run('hand_$n')")
            e=$(timed "SELECT pipeline.run('bench_engine_$n')")
        fi
        engine+=("$e")
        hand+=("$h")
    done
    em=$(median "${engine[@]}")
    hm=$(median "${hand[@]}")
    r=$(ratio "$em" "$hm")
    printf '%-34s engine %10.1f ms   hand-written %10.1f ms   ratio %s (%s)\n' \
        "$label" "$em" "$hm" "$r" "$(verdict "$r")"
    printf '    runs (ms): engine %s | hand-written %s\n' "${engine[*]}" "${hand[*]}"
    RESULTS+=("$label|$em|$hm|$r|$(verdict "$r")|${engine[*]}|${hand[*]}")
    check_targets
}

# check_targets prints what the engine's last runs did and that both
# contenders' targets hold the same rows.
check_targets() {
    psql_b -F ' ' -c "
        SELECT '    engine run: read ' || rows_read || ', inserted ' || rows_inserted
               || ', updated ' || rows_updated || ', unchanged ' || rows_unchanged
          FROM pipeline.runs
         WHERE run_id = (SELECT max(run_id) FROM pipeline.runs
                          WHERE pipeline_name = 'bench_engine_1')"
    local bad
    bad=$(psql_b -v reps="$REPS" -f "$BENCH_DIR/check.sql" | grep -v ': true$' || true)
    if [ -n "$bad" ]; then
        echo "    TARGETS DIFFER: $bad"
        TARGETS_DIFFER=1
    else
        echo "    targets identical: engine_N = hand_N for N = 1..$REPS"
    fi
}

vacuum_all() {
    psql_b -c 'VACUUM ANALYZE'
}

# idle_phase: the nothing-new latency, both contenders alternated in one
# session after WARMUP untimed runs each.
idle_phase() {
    local script times engine hand em hm r
    script=$(mktemp -t pp-bench-idle.XXXXXX)
    {
        for ((i = 0; i < WARMUP; i++)); do
            echo "SELECT pipeline.run('bench_engine_1');"
            echo "SELECT bench.hand_run('hand_1');"
        done
        printf '%s\n' '\timing on'
        for ((i = 0; i < IDLE_RUNS; i++)); do
            echo "SELECT pipeline.run('bench_engine_1');"
            echo "SELECT bench.hand_run('hand_1');"
        done
    } >"$script"
    times=$(psql_b -f "$script" | awk '/^Time: / { print $2 }')
    rm -f "$script"
    mapfile -t engine < <(awk 'NR % 2 == 1' <<<"$times")
    mapfile -t hand < <(awk 'NR % 2 == 0' <<<"$times")
    em=$(median "${engine[@]}")
    hm=$(median "${hand[@]}")
    r=$(ratio "$em" "$hm")
    IDLE_MEDIAN=$em
    printf '%-34s engine %10.3f ms   hand-written %10.3f ms   ratio %s (%s)\n' \
        "(d) nothing new, median of $IDLE_RUNS" "$em" "$hm" "$r" "$(verdict "$r")"
    printf '    engine: p90 %s ms, max %s ms; nothing-new target < 2 ms: %s\n' \
        "$(printf '%s\n' "${engine[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int(NR * 0.9)] }')" \
        "$(printf '%s\n' "${engine[@]}" | sort -g | tail -1)" \
        "$(awk -v m="$em" 'BEGIN { print (m < 2 ? "ok" : "MISSED") }')"
    RESULTS+=("(d) nothing new (median of $IDLE_RUNS)|$em|$hm|$r|$(verdict "$r")||")
    psql_b -c "SELECT '    the ' || count(*) || ' nothing-new engine runs read '
                      || sum(rows_read) || ' rows in total, status: '
                      || string_agg(DISTINCT status, ', ')
                 FROM (SELECT rows_read, status FROM pipeline.runs
                        WHERE pipeline_name = 'bench_engine_1'
                        ORDER BY run_id DESC LIMIT $((IDLE_RUNS + WARMUP))) AS r"
}

write_report() {
    local now cpu cores mem pgver line label em hm r v er hr settings opt
    settings=""
    for opt in "${PP_EXTRA_OPTS[@]}"; do
        [ "$opt" = "-o" ] || settings+="${settings:+, }$opt"
    done
    now=$(date -u '+%Y-%m-%d %H:%M UTC')
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    cores=$(nproc)
    mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
    pgver=$(psql_b -c 'SELECT version()')
    mkdir -p "$(dirname "$REPORT")"
    # sections other benchmarks keep in this page (bench/workers.sh) survive
    local kept=""
    if [ -f "$REPORT" ]; then
        kept=$(awk '/<!-- [a-z-]+:start -->/ { keep = 1 } keep { print } /<!-- [a-z-]+:end -->/ { keep = 0 }' "$REPORT")
    fi
    {
        echo "# Benchmarks"
        echo
        echo "Written by \`bash bench/run.sh\` on $now. Re-run it to refresh this page."
        echo
        echo "- Machine: $cpu, $cores cores, $mem of memory"
        echo "- Server: $pgver"
        echo "- Settings: $settings, fsync=off (set by pg_virtualenv, for both contenders alike)"
        echo "- Load average (1, 5, 15 min) before the setup: $LOAD_AT_START (the benchmark itself uses one core; more means other work shared the machine and the timings are noisier)"
        echo "- Data: \`bench.src\`, $ROWS rows, primary key on \`id\` (the unique key), btree index on \`updated_at\` (the incremental column)"
        echo
        echo "| phase | pipeline.run (median ms) | hand-written MERGE (median ms) | ratio | target ≤ 1.10 |"
        echo "| --- | ---: | ---: | ---: | --- |"
        for line in "${RESULTS[@]}"; do
            IFS='|' read -r label em hm r v er hr <<<"$line"
            printf '| %s | %.3f | %.3f | %s | %s |\n' "$label" "$em" "$hm" "$r" "$v"
        done
        echo
        printf 'A run with nothing new: median %.3f ms (target < 2 ms: %s).\n' "$IDLE_MEDIAN" \
            "$(awk -v m="$IDLE_MEDIAN" 'BEGIN { print (m < 2 ? "met" : "missed") }')"
        echo
        echo "Individual runs (ms, in repetition order):"
        echo
        for line in "${RESULTS[@]}"; do
            IFS='|' read -r label em hm r v er hr <<<"$line"
            [ -n "$er" ] && echo "- $label: pipeline.run $er; hand-written $hr"
        done
        echo
        echo "## Method"
        echo
        echo "- One server (a throwaway PostgreSQL 15 cluster started by pg_virtualenv) for the whole run; the same source table feeds both contenders."
        echo "- Contender 1: \`SELECT pipeline.run('bench_engine_N')\`, a merge pipeline (unique key \`id\`, incremental column \`updated_at\`) registered with \`create_target => false\`."
        echo "- Contender 2: \`SELECT bench.hand_run('hand_N')\` ([bench/hand_written.sql](../bench/hand_written.sql)): a watermark table, the high-water mark, one MERGE over the same window (watermark, high-water mark] with the same change detection as the engine's MERGE (IS DISTINCT FROM on every column but the key and the incremental column), the bounds passed as parameters, and the watermark advanced in the same transaction. It does not record runs, count rows by kind, check privileges or wait for in-flight writers; the engine's time includes all of that."
        echo "- Targets: \`bench.engine_N\` and \`bench.hand_N\`, all created alike (\`LIKE bench.src INCLUDING ALL\`: same columns, primary key, index)."
        echo "- Phases: (a) initial load into empty targets; (b) the watermarks reset, every row re-read and found unchanged (no row is rewritten); (c) 10% of the source rows changed ([bench/change10.sql](../bench/change10.sql)); (d) nothing new."
        echo "- (a) is not a MERGE for the engine: its targets are empty, so it inserts the de-duplicated window in batches and builds each target's primary key and index after the rows ([exactly-once](exactly-once.md#the-initial-load)); the hand-written MERGE fills them row by row."
        echo "- (a)-(c): $REPS repetitions per contender, alternated (ABBA), each into its own target, each in a fresh connection after a CHECKPOINT; the median is reported. VACUUM ANALYZE of every table between phases; autovacuum off so that it cannot start during a timing."
        echo "- (d): $WARMUP untimed runs each, then $IDLE_RUNS timed runs each, alternated in one session; the median is reported."
        echo "- Time is psql's \`\\timing\` of the single statement, commit included. After every phase the targets of both contenders are checked to hold exactly the same rows."
        echo "- Ratio = pipeline.run / hand-written; below 1 means the engine was faster."
        if [ -n "$kept" ]; then
            echo
            printf '%s\n' "$kept"
        fi
    } >"$REPORT"
}

bench_in_cluster() {
    cd "$PP_ROOT"
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "== setting up: $ROWS source rows, $REPS targets per contender"
    psql_b -v rows="$ROWS" -v reps="$REPS" -f "$BENCH_DIR/setup.sql"
    TARGETS_DIFFER=0

    echo "== timing (median of $REPS runs each; ratio = pipeline.run / hand-written)"
    phase "(a) initial load, $ROWS rows"
    vacuum_all

    psql_b -c "SELECT pipeline.reset('bench_engine_' || n) FROM generate_series(1, $REPS) AS n" >/dev/null
    psql_b -c "UPDATE bench.hand_watermark SET lo = NULL"
    phase "(b) re-run, every row unchanged"
    vacuum_all

    psql_b -f "$BENCH_DIR/change10.sql"
    phase "(c) 10% of rows changed"
    vacuum_all

    idle_phase
    write_report
    echo "== results written to ${REPORT#"$PP_ROOT"/}"
    if [ "$TARGETS_DIFFER" -ne 0 ]; then
        echo "the two contenders produced different targets: see above" >&2
        return 1
    fi
}

if [ "${1:-}" = "--in-cluster" ]; then
    bench_in_cluster
    exit
fi

cd "$PP_ROOT"
echo "== installing dependencies (apt, only what is missing)"
pp_install_deps
echo "== building and installing pg_pipeline (make && make install)"
pp_build all install
echo "== starting a throwaway PostgreSQL $PP_PGVERSION server for the benchmark"
pp_virtualenv env BENCH_ROWS="$ROWS" BENCH_REPS="$REPS" BENCH_IDLE_RUNS="$IDLE_RUNS" BENCH_REPORT="$REPORT" \
    bash "$BENCH_DIR/run.sh" --in-cluster
