#!/usr/bin/env bash
# test/openlineage/run.sh: validates the events of pipeline.openlineage_events
# against test/openlineage/run-event.schema.json (JSON Schema 2020-12,
# written for this project from the OpenLineage 2-0-2 specification) with
# ajv-cli, installed from the npm registry into a temporary directory.
# Runs against the server in PGHOST/PGPORT/PGUSER with pg_pipeline
# installable (e.g. under pg_virtualenv -o max_worker_processes=16). Also
# checks that the validator rejects broken events, so the test can fail.
# Prints one line per check and "N passed, N failed"; exit status non-zero
# on any failure.
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"; dropdb --if-exists pp_openlineage >/dev/null 2>&1' EXIT
passed=0; failed=0
ok()   { echo "ok - $1"; passed=$((passed + 1)); }
fail() { echo "not ok - $1"; failed=$((failed + 1)); }

AJV=${AJV:-}
if [ -z "$AJV" ]; then
    (cd "$work" && npm install --silent --no-audit --no-fund ajv-cli@5 ajv-formats@2 >/dev/null 2>&1) \
        || { echo "not ok - could not install ajv-cli from npm"; echo "0 passed, 1 failed"; exit 1; }
    AJV="$work/node_modules/.bin/ajv"
fi
validate() {  # validate FILE: 0 when valid
    "$AJV" validate --spec=draft2020 --strict=false -c ajv-formats \
        -s "$dir/run-event.schema.json" -d "$1" >"$work/ajv.out" 2>&1
}
# ajv-formats is resolved from the install directory
export NODE_PATH="$work/node_modules:${NODE_PATH:-}"
cd "$work" || exit 1

dropdb --if-exists pp_openlineage >/dev/null 2>&1
createdb pp_openlineage || { echo "not ok - createdb"; echo "0 passed, 1 failed"; exit 1; }
psql -X -q -d pp_openlineage -v out="$work/events.jsonl" -f "$dir/events.sql" >"$work/psql.out" 2>&1 \
    || { cat "$work/psql.out"; fail "events.sql"; }

n=0
while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    printf '%s\n' "$line" >"$work/event$n.json"
    type=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["eventType"])')
    if validate "$work/event$n.json"; then ok "event $n ($type) is a valid OpenLineage 2-0-2 RunEvent"
    else cat "$work/ajv.out"; fail "event $n ($type) is a valid OpenLineage 2-0-2 RunEvent"; fi
done <"$work/events.jsonl"

# what the events must contain
check() {  # check DESCRIPTION PYTHON-EXPRESSION-over-events
    if python3 - "$work/events.jsonl" "$2" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
    then ok "$1"; else fail "$1"; fi
}
check "events for 5 runs: START plus COMPLETE or FAIL each" \
      "len(events) == 10 and [e['eventType'] for e in events].count('START') == 5 and [e['eventType'] for e in events].count('FAIL') == 1"
check "START and end of a run share its runId" \
      "all(events[i]['run']['runId'] == events[i+1]['run']['runId'] for i in range(0, len(events), 2))"
check "the failed run carries errorMessage with SQLSTATE 22012" \
      "any(e['eventType'] == 'FAIL' and 'SQLSTATE 22012' in e['run']['facets']['errorMessage']['stackTrace'] for e in events)"
check "column lineage reaches the base tables through the view" \
      "any(f['name'].endswith('ol_raw.customers') and f['field'] == 'Region Name' for e in events for o in e['outputs'] for c in o['facets'].get('columnLineage', {}).get('fields', {}).values() for f in c['inputFields'])"
check "an aggregate is marked AGGREGATION, a copy IDENTITY" \
      "any(t['subtype'] == 'AGGREGATION' for e in events for o in e['outputs'] for c in o['facets'].get('columnLineage', {}).get('fields', {}).values() for f in c['inputFields'] for t in f['transformations']) and any(t['subtype'] == 'IDENTITY' for e in events for o in e['outputs'] for c in o['facets'].get('columnLineage', {}).get('fields', {}).values() for f in c['inputFields'] for t in f['transformations'])"
check "outputStatistics counts the rows written by the first run (3)" \
      "events[1]['outputs'][0]['outputFacets']['outputStatistics']['rowCount'] == 3"

# the validator rejects broken events (so the checks above can fail)
python3 - "$work/event2.json" "$work" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
broken = {
  'no-runid': lambda e: e['run'].pop('runId'),
  'bad-uuid': lambda e: e['run'].__setitem__('runId', 'run-42'),
  'bad-type': lambda e: e.__setitem__('eventType', 'DONE'),
  'bad-time': lambda e: e.__setitem__('eventTime', 'yesterday'),
  'no-producer-in-facet': lambda e: e['outputs'][0]['facets']['schema'].pop('_producer'),
  'no-inputfields': lambda e: next(iter(e['outputs'][0]['facets']['columnLineage']['fields'].values())).pop('inputFields'),
  'negative-rowcount': lambda e: e['outputs'][0]['outputFacets']['outputStatistics'].__setitem__('rowCount', -1),
}
for name, f in broken.items():
    x = json.loads(json.dumps(e)); f(x)
    json.dump(x, open(f"{sys.argv[2]}/broken-{name}.json", 'w'))
PY
for f in "$work"/broken-*.json; do
    name=$(basename "$f" .json)
    if validate "$f"; then fail "the schema rejects $name"; else ok "the schema rejects $name"; fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
