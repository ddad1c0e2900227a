#!/usr/bin/env bash
# bench/typed_loads.sh
#
# What a typed load from text staging costs a run. Builds this tree,
# installs it into a directory of its own (never into the system's
# PostgreSQL), starts one throwaway cluster from it, writes BENCH_ROWS
# (1,000,000) rows of text into a staging table, and times, alternately,
# BENCH_REPS (5) times each, the initial load of the whole window into an
# empty target by three merge pipelines:
#   cast     reads a view over the staging table that casts each column
#            with ::type, the way a user converts without typed loads;
#   typed    reads the staging table itself, column_types giving the target
#            the same types: every value converts, with the plain-cast try;
#   trash    the same over a copy of the staging table in which one row in
#            a thousand has a value that does not convert: the plain-cast
#            try fails and the window loads again through the conversion
#            gate, row by row (those rows go to quarantine).
# Each time is psql's \timing of SELECT pipeline.run(...), commit included,
# in a fresh session after a CHECKPOINT; targets are emptied and watermarks
# reset before each run. Prints the medians and ratios and writes them
# between the typed-loads markers of docs/benchmarks.md. Reports; does not
# fail on timings. Target: typed / cast <= 1.3.
# Usage: bash bench/typed_loads.sh   (as root; takes a few minutes)
set -euo pipefail

BENCH_NAME=typed BENCH_PORT=55443
# shellcheck source=bench/private_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/private_cluster.sh"

echo "== staging $ROWS rows of text"
q -c "
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA b;
CREATE TABLE b.raw (order_id text, customer_id text, amount text, ordered_at text, paid text,
                    loaded_at bigint NOT NULL);
INSERT INTO b.raw SELECT g::text, (1 + (g * 7919) % 100000)::text, round(((g * 37) % 100000) / 100.0, 2)::text,
       (timestamptz '2024-01-01 00:00+00' + g * interval '1 second')::text, (g % 2 = 0)::text, g
  FROM generate_series(1::bigint, $ROWS) g;
CREATE INDEX ON b.raw (loaded_at);
CREATE TABLE b.raw_trash (LIKE b.raw);
INSERT INTO b.raw_trash SELECT order_id, customer_id,
       CASE WHEN loaded_at % 1000 = 500 THEN 'n/a' ELSE amount END, ordered_at, paid, loaded_at FROM b.raw;
CREATE INDEX ON b.raw_trash (loaded_at);
CREATE VIEW b.raw_cast AS
SELECT order_id::bigint AS order_id, customer_id::int AS customer_id, amount::numeric(12,2) AS amount,
       ordered_at::timestamptz AS ordered_at, paid::boolean AS paid, loaded_at
  FROM b.raw;
SELECT pipeline.create_pipeline('cast', 'b.raw_cast', 'b.dst_cast', unique_key => ARRAY['order_id'],
                                incremental_column => 'loaded_at');
SELECT pipeline.create_pipeline(p, s, 'b.dst_' || p, unique_key => ARRAY['order_id'],
                                incremental_column => 'loaded_at',
                                column_types => '{\"order_id\": \"bigint\", \"customer_id\": \"int\",
                                                  \"amount\": \"numeric(12,2)\", \"ordered_at\": \"timestamptz\",
                                                  \"paid\": \"boolean\"}')
  FROM (VALUES ('typed', 'b.raw'), ('trash', 'b.raw_trash')) AS v(p, s);" \
  -c 'VACUUM ANALYZE' >/dev/null

reset_target() { q -c "TRUNCATE b.dst_$1" -c "DELETE FROM pipeline.quarantine_row" -c "SELECT pipeline.reset('$1')" >/dev/null; }

echo "== initial load of $ROWS rows, $REPS times each, in rotating order"
cast=(); typed=(); trash=()
orders=("cast typed trash" "trash typed cast" "typed cast trash" "trash cast typed" "typed trash cast")
for ((n = 1; n <= REPS; n++)); do
    for p in ${orders[$(((n - 1) % 5))]}; do
        reset_target "$p"
        t=$(timed "SELECT pipeline.run('$p')")
        case $p in cast) cast+=("$t");; typed) typed+=("$t");; trash) trash+=("$t");; esac
    done
done
cm=$(median "${cast[@]}"); tm=$(median "${typed[@]}"); xm=$(median "${trash[@]}")
r=$(ratio "$tm" "$cm"); rx=$(ratio "$xm" "$cm")
same=$(q -c "SELECT count(*) FROM (SELECT * FROM b.dst_cast EXCEPT ALL SELECT * FROM b.dst_typed) d")
loaded=$(q -c "SELECT (SELECT count(*) FROM b.dst_cast) || ' / ' || (SELECT count(*) FROM b.dst_typed)
                      || ' / ' || (SELECT count(*) FROM b.dst_trash) || ' rows; quarantined by the last trash run: '
                      || (SELECT rows_quarantined FROM pipeline.runs WHERE pipeline_name = 'trash'
                           ORDER BY run_id DESC LIMIT 1)")
echo "   cast:  ${cast[*]} -> median $cm ms"
echo "   typed: ${typed[*]} -> median $tm ms   ratio $r (target <= 1.3)"
echo "   trash: ${trash[*]} -> median $xm ms   ratio $rx"
echo "   loaded (cast / typed / trash): $loaded; rows of cast not in typed: $same"

section=$(cat <<MD
<!-- typed-loads:start -->
## Typed loads from text staging

$(written_by typed_loads.sh)

| load of $ROWS text rows into an empty typed target | median ms | ratio | target |
| --- | ---: | ---: | --- |
| a view that casts each column with \`::type\` | $cm | | |
| typed load (\`column_types\`), every value converts | $tm | $r | ≤ 1.3 |
| typed load, one row in 1,000 has a value that does not convert | $xm | $rx | |

Runs (ms, in order): cast ${cast[*]}; typed ${typed[*]}; with trash ${trash[*]}.
Loaded (cast / typed / trash): $loaded; rows of the cast target not in the typed one: $same.

Method: [bench/typed_loads.sh](../bench/typed_loads.sh). Three merge
pipelines load the same 1,000,000 staged rows of five text columns (a
bigint key, an int, a numeric(12,2), a timestamptz, a boolean) into
identical empty targets. The first reads a view that casts; the second
converts with the input functions in its load statement, inside a
subtransaction (docs/quality.md); the third reads a copy with 1,000 values
that do not convert, so its first try fails at the first of them, is rolled
back, and the window loads again through the conversion gate: a
subtransaction per row while its values convert. $REPS runs each, in
rotating order, each in a fresh session after a CHECKPOINT, the targets
emptied, the quarantine cleared and the watermarks reset before each;
shared_buffers 1GB, autovacuum off, no parallel query.
<!-- typed-loads:end -->
MD
)
write_section typed-loads "$section"
