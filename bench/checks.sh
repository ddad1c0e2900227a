#!/usr/bin/env bash
# bench/checks.sh
#
# What data checks cost a run. Builds this tree, installs it into a
# directory of its own (never into the system's PostgreSQL), starts one
# throwaway cluster from it, loads BENCH_ROWS (1,000,000) rows into a source
# and times, alternately (ABBA), BENCH_REPS (5) times each, the initial load
# of the whole source into an empty target by two pipelines that differ only
# in their checks:
#   plain    no checks;
#   checked  five row checks of severity quarantine: not_null (two
#            columns), accepted_values, range and two expressions;
#   related  the same with a relationships check instead of the second
#            expression;
#   regexed  the same with a regex check instead of it;
# every row passes every check, so all four load the same rows.
# Each time is psql's \timing of SELECT pipeline.run(...), commit included,
# in a fresh session after a CHECKPOINT; the targets are emptied and the
# watermarks reset before each run. Prints the medians and their ratio and
# writes them between the checks markers of docs/benchmarks.md. Reports; does
# not fail on timings. Target: checked / plain <= 1.15.
# Usage: bash bench/checks.sh   (as root; takes a few minutes)
set -euo pipefail

BENCH_NAME=checks BENCH_PORT=55441
# shellcheck source=bench/private_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/private_cluster.sh"

echo "== loading $ROWS rows"
q -c "
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA b;
CREATE TABLE b.src (id bigint PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                    amount numeric(12,2) NOT NULL, note text, updated_at timestamptz NOT NULL);
INSERT INTO b.src SELECT g, 1 + (g * 7919) % 100000, (ARRAY['placed','paid','shipped'])[1 + g % 3],
       round(((g * 37) % 100000) / 100.0, 2), CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ' || (g % 1000) END,
       timestamptz '2024-01-01' + g * interval '1 millisecond'
  FROM generate_series(1::bigint, $ROWS) g;
CREATE INDEX ON b.src (updated_at);
CREATE TABLE b.customers (id int PRIMARY KEY);
INSERT INTO b.customers SELECT generate_series(1, 100000);
SELECT pipeline.create_pipeline('plain', 'b.src', 'b.dst_plain', unique_key => ARRAY['id'],
                                incremental_column => 'updated_at');
SELECT pipeline.create_pipeline('checked', 'b.src', 'b.dst_checked', unique_key => ARRAY['id'],
                                incremental_column => 'updated_at');
SELECT pipeline.create_pipeline(p, 'b.src', 'b.dst_' || p, unique_key => ARRAY['id'],
                                incremental_column => 'updated_at')
  FROM unnest(ARRAY['related', 'regexed']) AS p;
SELECT pipeline.add_check(p, 'present', 'not_null', '{\"columns\": [\"status\", \"amount\"]}', 'quarantine'),
       pipeline.add_check(p, 'known_status', 'accepted_values',
                          '{\"column\": \"status\", \"values\": [\"placed\", \"paid\", \"shipped\"]}', 'quarantine'),
       pipeline.add_check(p, 'amount_range', 'range', '{\"column\": \"amount\", \"min\": 0, \"max\": 1000}', 'quarantine'),
       pipeline.add_check(p, 'positive', 'expression', '{\"sql\": \"amount >= 0\"}', 'quarantine')
  FROM unnest(ARRAY['checked', 'related', 'regexed']) AS p;
SELECT pipeline.add_check('checked', 'customer', 'expression', '{\"sql\": \"customer_id > 0\"}', 'quarantine');
SELECT pipeline.add_check('related', 'customer', 'relationships',
                          '{\"column\": \"customer_id\", \"to\": \"b.customers\", \"field\": \"id\"}', 'quarantine');
SELECT pipeline.add_check('regexed', 'note_shape', 'regex', '{\"column\": \"note\", \"pattern\": \"^note [0-9]+\$\"}', 'quarantine');" \
  -c 'VACUUM ANALYZE' >/dev/null

reset_target() { q -c "TRUNCATE b.$2" -c "SELECT pipeline.reset('$1')" >/dev/null; }

echo "== initial load of $ROWS rows, $REPS times each, in rotating order"
plain=(); checked=(); related=(); regexed=()
orders=("plain checked related regexed" "regexed related checked plain" "checked plain regexed related"
        "related regexed plain checked" "plain regexed checked related")
for ((n = 1; n <= REPS; n++)); do
    for p in ${orders[$(((n - 1) % 5))]}; do
        reset_target "$p" "dst_$p"
        t=$(timed "SELECT pipeline.run('$p')")
        case $p in plain) plain+=("$t");; checked) checked+=("$t");; related) related+=("$t");;
                   regexed) regexed+=("$t");; esac
    done
done
pm=$(median "${plain[@]}"); cm=$(median "${checked[@]}"); lm=$(median "${related[@]}"); xm=$(median "${regexed[@]}")
r=$(ratio "$cm" "$pm"); rl=$(ratio "$lm" "$pm"); rx=$(ratio "$xm" "$pm")
loaded=$(q -c "SELECT (SELECT count(*) FROM b.dst_plain) || ' / ' || (SELECT count(*) FROM b.dst_checked)
                      || ' / ' || (SELECT count(*) FROM b.dst_related) || ' / ' || (SELECT count(*) FROM b.dst_regexed)
                      || ' rows; quarantined: ' || (SELECT sum(rows_quarantined) FROM pipeline.runs)")
echo "   plain:   ${plain[*]} -> median $pm ms"
echo "   checked: ${checked[*]} -> median $cm ms   ratio $r (target <= 1.15)"
echo "   related: ${related[*]} -> median $lm ms   ratio $rl"
echo "   regexed: ${regexed[*]} -> median $xm ms   ratio $rx"
echo "   loaded (plain / checked / related / regexed): $loaded"

section=$(cat <<MD
<!-- checks:start -->
## Data checks

$(written_by checks.sh)

| load of $ROWS rows into an empty target | median ms | ratio | target |
| --- | ---: | ---: | --- |
| no checks | $pm | | |
| five row checks: not_null (2 columns), accepted_values, range, two expressions | $cm | $r | ≤ 1.15 |
| the same with relationships (100,000 keys) instead of the second expression | $lm | $rl | |
| the same with regex instead of the second expression | $xm | $rx | |

Runs (ms, in order): no checks ${plain[*]}; five checks ${checked[*]};
with relationships ${related[*]}; with regex ${regexed[*]}.
Loaded (no checks / five checks / relationships / regex): $loaded.

Method: [bench/checks.sh](../bench/checks.sh). Four merge pipelines read the
same source (primary key \`id\`, index on \`updated_at\`) into identical
empty targets; they differ only in their checks, of severity quarantine,
which every row passes, so all load the same rows and the difference is the
cost of evaluating the checks inside the load statement (the gate of
docs/quality.md). Two kinds cost far more than the others, per row, whatever
the gate: a relationships check is a hashed subplan probe
(\`c IN (SELECT f FROM to)\`), a regex check a run of PostgreSQL's regex
engine, which converts each value to wide characters before it matches. $REPS runs each, in rotating order, each in a fresh session after
a CHECKPOINT, the target emptied and the watermark reset before each;
shared_buffers 1GB, autovacuum off, no parallel query.
<!-- checks:end -->
MD
)
write_section checks "$section"
