#!/usr/bin/env bash
# bench/masks.sh
#
# What masks cost a run. Builds this tree, installs it into a directory of
# its own (never into the system's PostgreSQL), starts one throwaway cluster
# from it, loads BENCH_ROWS (1,000,000) rows into a source and times,
# alternately, BENCH_REPS (5) times each, the initial load of the whole
# source into an empty target by two pipelines that differ only in their
# masks:
#   plain    no masks;
#   masked   three masked columns: email tokenized (HMAC-SHA-256), phone
#            partial, birth_date cut to its month.
# Each time is psql's \timing of SELECT pipeline.run(...), commit included,
# in a fresh session after a CHECKPOINT; the targets are emptied and the
# watermarks reset before each run. Prints the medians and their ratio and
# writes them between the masks markers of docs/benchmarks.md. Reports; does
# not fail on timings. Target (issue 11): masked / plain <= 1.2.
# Usage: bash bench/masks.sh   (as root; takes a few minutes)
set -euo pipefail

BENCH_NAME=masks BENCH_PORT=55442
# shellcheck source=bench/private_cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/private_cluster.sh"

echo "== loading $ROWS rows"
q -c "
CREATE EXTENSION pg_pipeline;
CREATE SCHEMA b;
CREATE TABLE b.src (id bigint PRIMARY KEY, email text NOT NULL, phone text NOT NULL,
                    birth_date date NOT NULL, amount numeric(12,2) NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO b.src SELECT g, 'customer' || g || '@example.com', '+44 20 7946 ' || lpad((g % 10000)::text, 4, '0'),
       date '1950-01-01' + (g % 20000)::int, round(((g * 37) % 100000) / 100.0, 2),
       timestamptz '2024-01-01' + g * interval '1 millisecond'
  FROM generate_series(1::bigint, $ROWS) g;
CREATE INDEX ON b.src (updated_at);
SELECT pipeline.create_key('default');
SELECT pipeline.create_pipeline('plain', 'b.src', 'b.dst_plain', unique_key => ARRAY['id'],
                                incremental_column => 'updated_at');
SELECT pipeline.create_pipeline('masked', 'b.src', 'b.dst_masked', unique_key => ARRAY['id'],
                                incremental_column => 'updated_at',
                                masks => '{\"email\": \"tokenize\", \"phone\": \"partial\", \"birth_date\": \"month\"}');" \
  -c 'VACUUM ANALYZE' >/dev/null

reset_target() { q -c "TRUNCATE b.$2" -c "SELECT pipeline.reset('$1')" >/dev/null; }

echo "== initial load of $ROWS rows, $REPS times each, alternated"
plain=(); masked=()
for ((n = 1; n <= REPS; n++)); do
    if ((n % 2)); then order="plain masked"; else order="masked plain"; fi
    for p in $order; do
        reset_target "$p" "dst_$p"
        t=$(timed "SELECT pipeline.run('$p')")
        case $p in plain) plain+=("$t");; masked) masked+=("$t");; esac
    done
done
pm=$(median "${plain[@]}"); mm=$(median "${masked[@]}")
r=$(ratio "$mm" "$pm")
loaded=$(q -c "SELECT (SELECT count(*) FROM b.dst_plain) || ' / ' || (SELECT count(*) FROM b.dst_masked)
                      || ' rows; raw e-mails in the masked target: '
                      || (SELECT count(*) FROM b.dst_masked WHERE email LIKE '%@%')")
echo "   plain:  ${plain[*]} -> median $pm ms"
echo "   masked: ${masked[*]} -> median $mm ms   ratio $r (target <= 1.2)"
echo "   loaded (plain / masked): $loaded"

section=$(cat <<MD
<!-- masks:start -->
## Masks at load

$(written_by masks.sh)

| load of $ROWS rows into an empty target | median ms | ratio | target |
| --- | ---: | ---: | --- |
| no masks | $pm | | |
| three masks: email tokenize, phone partial, birth_date month | $mm | $r | ≤ 1.2 |

Runs (ms, in order): no masks ${plain[*]}; masked ${masked[*]}.
Loaded (no masks / masked): $loaded.

Method: [bench/masks.sh](../bench/masks.sh). Two merge pipelines read the
same source into identical empty targets and differ only in their masks,
which the load statement applies in its select list (docs/privacy.md). A
token is one HMAC-SHA-256 of the value per row (PostgreSQL's common/hmac.h),
with one HMAC context per key version kept for the whole load statement
and keyed once (freed after the statement, or by its resource owner when
it fails), the key's secret cached per backend and per call site; partial
works on the value's bytes, and month truncates a date in C. It was 2.1x
with a context created, keyed and freed per token. What remains above the
1.2 target is mostly the HMAC's plumbing in OpenSSL under pg_hmac: per
token, two copies of a digest context (an allocation and a free each)
around the two SHA-256 compressions, about 0.25 s of libcrypto for the
1,000,000 tokens in a profile of the masked load; then the three function
calls per row and their output values. The masks' cost is 0.31-0.33 s
per 1,000,000 rows; the ratio is that cost over a base load that keeps
getting faster. With the target's indexes filled from each batch (no
masks 1,550-1,850 ms; it was 2,251 ms row by row), separate runs of this
script on 2026-11-30 gave 1.27, 1.30, 1.18 and 1.21, then 1.171 and 1.165
once a token's text was no longer formatted per row: the 1.2 target met.
Since the bulk path builds the target's two indexes after the rows
(docs/exactly-once.md), no masks takes 1,000-1,090 ms and masked
1,300-1,420 ms (two runs): the same masks' cost over a base 35% faster,
so the ratio is about 1.3 and the target is missed again. $REPS runs each, alternated, each in a fresh session after a
CHECKPOINT, the target emptied and the watermark reset before each;
shared_buffers 1GB, autovacuum off, no parallel query.
<!-- masks:end -->
MD
)
write_section masks "$section"
