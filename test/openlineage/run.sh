#!/usr/bin/env bash
# test/openlineage/run.sh: validates the events of pipeline.openlineage_events
# against test/openlineage/run-event.schema.json (JSON Schema 2020-12,
# written for this project from the OpenLineage 2-0-2 specification) with
# ajv-cli, installed from the npm registry into a temporary directory; and
# against the official OpenLineage schemas in ../shared/openlineage/spec
# (relative to the repository root; OL_SPEC overrides it): each event
# against the schema its schemaURL names, each facet against the one its
# _schemaURL names, pg_pipeline's own facets against docs/openlineage/
# (validate_official.js). Then checks what the events mean.
# Runs against the server in PGHOST/PGPORT/PGUSER with pg_pipeline
# installable (e.g. under pg_virtualenv -o max_worker_processes=16). Also
# checks that the validator rejects broken events, so the test can fail.
# Prints one line per check and "N passed, N failed"; exit status non-zero
# on any failure. With AJV set to an ajv binary, NODE_PATH must reach the
# ajv and ajv-formats packages that validate_official.js requires.
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
spec=${OL_SPEC:-$dir/../../../shared/openlineage/spec}
[ -f "$spec/2-0-2/OpenLineage.json" ] \
    || { echo "not ok - the official schemas are not in $spec"; echo "0 passed, 1 failed"; exit 1; }
spec=$(cd "$spec" && pwd)
# ajv-formats is resolved from the install directory
export NODE_PATH="$work/node_modules:${NODE_PATH:-}"
cd "$work" || exit 1

dropdb --if-exists pp_openlineage >/dev/null 2>&1
createdb pp_openlineage || { echo "not ok - createdb"; echo "0 passed, 1 failed"; exit 1; }
psql -X -q -d pp_openlineage -v out="$work/events.jsonl" -v out2="$work/events2.jsonl" -f "$dir/events.sql" >"$work/psql.out" 2>&1 \
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
if node "$dir/validate_official.js" "$spec" "$dir/../../docs/openlineage" "$work"/event[0-9]*.json >"$work/official.out" 2>&1; then
    ok "every event and facet is valid against the official schema its schemaURL names ($(tail -1 "$work/official.out" | sed 's/^# //'))"
else
    cat "$work/official.out"; fail "every event and facet is valid against the official schema its schemaURL names"
fi

# what the events must contain
check() {  # check DESCRIPTION PYTHON-EXPRESSION-over-events
    if python3 - "$work/events.jsonl" "$2" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
    then ok "$1"; else fail "$1"; fi
}
check "events for 8 runs: START plus COMPLETE or FAIL each, no ABORT (the skipped run and the run that found nothing new have none)" \
      "len(events) == 16 and [e['eventType'] for e in events].count('START') == 8 and [e['eventType'] for e in events].count('FAIL') == 1 and 'ABORT' not in [e['eventType'] for e in events]"
check "START and end of a run share its runId; runs do not share one" \
      "all(events[i]['run']['runId'] == events[i+1]['run']['runId'] for i in range(0, len(events), 2)) and len({e['run']['runId'] for e in events}) == 8"
check "the runId is a UUIDv7 whose time is the run's start (ms)" \
      "all(e['run']['runId'][14] == '7' and e['run']['runId'][19] in '89ab' and int(e['run']['runId'][:8] + e['run']['runId'][9:13], 16) == (__import__('datetime').datetime.fromisoformat(e['eventTime'].replace('Z', '+00:00')) - __import__('datetime').datetime(1970, 1, 1, tzinfo=__import__('datetime').timezone.utc)) // __import__('datetime').timedelta(milliseconds=1) for e in events if e['eventType'] == 'START')"
if cmp -s "$work/events.jsonl" "$work/events2.jsonl"; then ok "a second export gives the same events (runIds are deterministic)"
else fail "a second export gives the same events (runIds are deterministic)"; fi
check "the failed run's errorMessage: SQLSTATE 22012, language SQL, no stack trace, no error text" \
      "any(e['eventType'] == 'FAIL' and 'SQLSTATE 22012' in e['run']['facets']['errorMessage']['message'] and 'division' not in e['run']['facets']['errorMessage']['message'] and e['run']['facets']['errorMessage']['programmingLanguage'] == 'SQL' and 'stackTrace' not in e['run']['facets']['errorMessage'] for e in events)"
check "datasets are named database.schema.table, parts with a dot, quote or space quoted: \"ol_a.b\".c and ol_a.\"b.c\" differ" \
      "{d['name'] for e in events for d in e['inputs'] + e['outputs']} >= {'pp_openlineage.\"ol_a.b\".c', 'pp_openlineage.ol_a.\"b.c\"', 'pp_openlineage.ol_a.\"my table\"', 'pp_openlineage.ol_raw.orders', 'pp_openlineage.ol_mart.daily'}"
check "datasets are in pipeline.openlineage_namespace, jobs in pipeline.openlineage_job_namespace" \
      "all(d['namespace'] == 'postgres://db.example.com:5432' for e in events for d in e['inputs'] + e['outputs']) and all(e['job']['namespace'] == 'pg_pipeline-test' for e in events)"
check "an upstream-triggered run names the upstream run in jobDependencies, and no event has parent" \
      "any(e['job']['name'] == 'ol daily \"revenue\"' and e['run']['facets'].get('jobDependencies', {}).get('upstream', [{}])[0].get('job') == {'namespace': 'pg_pipeline-test', 'name': 'ol_orders'} and e['run']['facets']['jobDependencies']['upstream'][0]['run']['runId'] == events[0]['run']['runId'] for e in events) and not any('parent' in e['run']['facets'] for e in events)"
check "the pg_pipeline run facet's _schemaURL is the JSON Schema in docs/openlineage" \
      "all(e['run']['facets']['pg_pipeline_run']['_schemaURL'].endswith('/docs/openlineage/PipelineRunFacet.json#/\$defs/PipelineRunFacet') for e in events)"
orders="[e for e in events if e['job']['name'] == 'ol_orders']"
check "the sql job facet holds the load statement, dialect postgres" \
      "all('MERGE INTO ol_core.orders' in e['job']['facets']['sql']['query'] and e['job']['facets']['sql']['dialect'] == 'postgres' for e in $orders)"
check "the documentation job facet is the pipeline's description" \
      "all(e['job']['facets']['documentation']['description'] == 'orders, cleaned' for e in $orders) and not any('documentation' in e['job']['facets'] for e in events if e['job']['name'] != 'ol_orders')"
check "the ownership job facet names the owner role" \
      "all(e['job']['facets']['ownership']['owners'] == [{'name': 'user:' + __import__('os').environ.get('PGUSER', 'postgres'), 'type': 'OWNER'}] for e in events)"
check "the tags job facet holds the metadata's keys" \
      "all(sorted((t['key'], t['value']) for t in e['job']['facets']['tags']['tags']) == [('team', 'sales'), ('tier', '1')] for e in $orders) and not any('tags' in e['job']['facets'] for e in events if e['job']['name'] != 'ol_orders')"
check "the processing_engine run facet: pg_pipeline, its version, PostgreSQL's as the adapter's" \
      "all(e['run']['facets']['processing_engine']['name'] == 'pg_pipeline' and e['run']['facets']['processing_engine']['version'] == '0.2.0' and e['run']['facets']['processing_engine']['openlineageAdapterVersion'].startswith('15') for e in events)"
check "a scheduled run has nominalTime, the minute its schedule fired; the others have none" \
      "[e['run']['facets']['nominalTime']['nominalStartTime'] for e in events if 'nominalTime' in e['run']['facets']] == ['2024-05-01T10:00:00.000000Z'] * 2"
check "the source's inputStatistics on the end event counts the rows read (3), none on START" \
      "events[1]['inputs'][0]['inputFacets']['inputStatistics']['rowCount'] == 3 and events[1]['inputs'][0]['name'].endswith('ol_core.orders_v') and not any('inputFacets' in d for e in events if e['eventType'] == 'START' for d in e['inputs'])"
check "a dataset's documentation facet is its COMMENT ON, a column's description its comment" \
      "any(d['name'].endswith('ol_raw.orders') and d['facets']['documentation']['description'] == 'raw orders' and {'name': 'amount', 'type': 'numeric(10,2)', 'description': 'in EUR'} in d['facets']['schema']['fields'] for e in events for d in e['inputs'])"
ind="lambda job: {(i['name'].split('.', 1)[1], i['field'], i['transformations'][0]['type'], i['transformations'][0]['subtype']) for e in events if e['job']['name'] == job and e['eventType'] != 'START' for i in e['outputs'][0]['facets']['columnLineage']['dataset']}"
check "INDIRECT lineage of ol_orders: the view's join keys, the incremental column, the unique key" \
      "($ind)('ol_orders') == {('ol_raw.orders', 'customer_id', 'INDIRECT', 'JOIN'), ('ol_raw.customers', 'customer_id', 'INDIRECT', 'JOIN'), ('ol_core.orders_v', 'seq', 'INDIRECT', 'FILTER'), ('ol_core.orders_v', 'order_id', 'INDIRECT', 'JOIN')}"
check "INDIRECT lineage of the daily pipeline: the view's WHERE and GROUP BY, the unique key" \
      "($ind)('ol daily \"revenue\"') == {('ol_core.orders', 'order_id', 'INDIRECT', 'FILTER'), ('ol_core.orders', 'day', 'INDIRECT', 'GROUP_BY'), ('ol_core.orders', 'region', 'INDIRECT', 'GROUP_BY'), ('ol_mart.daily_v', 'day', 'INDIRECT', 'JOIN'), ('ol_mart.daily_v', 'region', 'INDIRECT', 'JOIN')}"
check "INDIRECT lineage of ol_space: the delete column (CONDITIONAL) and the unique key" \
      "($ind)('ol_space') == {('ol_a.\"my table\"', 'gone', 'INDIRECT', 'CONDITIONAL'), ('ol_a.\"my table\"', 'id', 'INDIRECT', 'JOIN')}"
check "the START event has no columnLineage; every INDIRECT input is one of the event's inputs" \
      "not any('columnLineage' in o['facets'] for e in events if e['eventType'] == 'START' for o in e['outputs']) and all(i['name'] in {d['name'] for d in e['inputs']} for e in events for o in e['outputs'] for i in o['facets'].get('columnLineage', {}).get('dataset', []))"
check "each field also carries transformationDescription and transformationType (IDENTITY for a copy only)" \
      "all('transformationDescription' in c and c['transformationType'] == ('IDENTITY' if all(f['transformations'][0]['subtype'] == 'IDENTITY' for f in c['inputFields']) else 'TRANSFORMATION') for e in events for o in e['outputs'] for c in o['facets'].get('columnLineage', {}).get('fields', {}).values()) and any(c['transformationType'] == 'TRANSFORMATION' and 'aggregate' in c['transformationDescription'] for e in events for o in e['outputs'] for c in o['facets'].get('columnLineage', {}).get('fields', {}).values())"
check "column lineage reaches the base tables through the view" \
      "any(f['name'].endswith('ol_raw.customers') and f['field'] == 'Region Name' for e in events for o in e['outputs'] for c in o['facets'].get('columnLineage', {}).get('fields', {}).values() for f in c['inputFields'])"
check "an aggregate is marked AGGREGATION, a copy IDENTITY" \
      "any(t['subtype'] == 'AGGREGATION' for e in events for o in e['outputs'] for c in o['facets'].get('columnLineage', {}).get('fields', {}).values() for f in c['inputFields'] for t in f['transformations']) and any(t['subtype'] == 'IDENTITY' for e in events for o in e['outputs'] for c in o['facets'].get('columnLineage', {}).get('fields', {}).values() for f in c['inputFields'] for t in f['transformations'])"
field="lambda job, col: {(f['name'].split('.', 1)[1], f['field'], f['transformations'][0]['type'], f['transformations'][0]['subtype']) for e in events if e['job']['name'] == job and e['eventType'] != 'START' for f in e['outputs'][0]['facets']['columnLineage']['fields'][col]['inputFields']}"
check "a CASE's test is INDIRECT CONDITIONAL on its field, its branches DIRECT" \
      "($field)('ol_orders', 'status') == {('ol_raw.orders', 'status', 'DIRECT', 'TRANSFORMATION'), ('ol_raw.orders', 'status', 'INDIRECT', 'CONDITIONAL')} and ($field)('ol_orders', 'ten') == {('ol_raw.orders', 'status', 'INDIRECT', 'CONDITIONAL')}"
check "a cast over an aggregate is still AGGREGATION" \
      "($field)('ol daily \"revenue\"', 'revenue') == {('ol_core.orders', 'amount2', 'DIRECT', 'AGGREGATION')}"
check "a classified column is tagged pii on its relation (declared) and on the columns derived from it (lineage)" \
      "any(t == {'key': 'pii', 'value': 'pii.address', 'source': 'PG_PIPELINE_DECLARED', 'field': 'Region Name'} for e in events for d in e['inputs'] if d['name'].endswith('ol_raw.customers') for t in d['facets'].get('tags', {}).get('tags', [])) and any(t == {'key': 'pii', 'value': 'pii.address', 'source': 'PG_PIPELINE_LINEAGE', 'field': 'region'} for e in events for d in e['outputs'] if d['name'].endswith('ol_core.orders') for t in d['facets'].get('tags', {}).get('tags', []))"
check "a constant column has no input (it is not a copy of the view's column)" \
      "any(e['job']['name'] == 'ol daily \"revenue\"' and e['eventType'] == 'COMPLETE' for e in events) and all('channel' not in e['outputs'][0]['facets']['columnLineage']['fields'] for e in events if e['job']['name'] == 'ol daily \"revenue\"' and e['eventType'] != 'START')"
check "count(*) points at the table it counts (the columns that decide which rows, INDIRECT), not at the view" \
      "($field)('ol daily \"revenue\"', 'n') == {('ol_core.orders', 'order_id', 'INDIRECT', 'FILTER'), ('ol_core.orders', 'day', 'INDIRECT', 'GROUP_BY'), ('ol_core.orders', 'region', 'INDIRECT', 'GROUP_BY')}"
check "outputStatistics counts the rows written by the first run (3)" \
      "events[1]['outputs'][0]['outputFacets']['outputStatistics']['rowCount'] == 3"

# the settings and the namespace argument are validated
setting() {  # setting DESCRIPTION EXPECT(ok|22023) SQL
    out=$(psql -X -q -d pp_openlineage -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
          -c "LOAD 'pg_pipeline'" -c "$3" 2>&1); rc=$?
    if [ "$2" = ok ] && [ $rc -eq 0 ]; then ok "$1"
    elif [ "$2" != ok ] && [ $rc -ne 0 ] && printf '%s' "$out" | grep -q "$2"; then ok "$1"
    else printf '%s\n' "$out"; fail "$1"; fi
}
setting "the dataset namespace refuses a value without postgres://" 22023 "SET pipeline.openlineage_namespace = 'localhost:5432'"
setting "the dataset namespace refuses a port out of range" 22023 "SET pipeline.openlineage_namespace = 'postgres://db:65536'"
setting "the dataset namespace refuses a user or database in the address" 22023 "SET pipeline.openlineage_namespace = 'postgres://me@db:5432/x'"
setting "the dataset namespace takes a bracketed IPv6 address" ok "SET pipeline.openlineage_namespace = 'postgres://[::1]:5432'"
setting "the job namespace refuses white space" 22023 "SET pipeline.openlineage_job_namespace = 'my jobs'"
setting "the job namespace takes a name" ok "SET pipeline.openlineage_job_namespace = 'etl-prod'"
setting "the namespace argument is validated as well" 22023 "SELECT pipeline.openlineage_events(1, 'file:///tmp')"
got=$(psql -X -q -At -d pp_openlineage -c "SET pipeline.openlineage_namespace = 'postgres://a:1'" \
      -c "SELECT DISTINCT d->>'namespace' FROM pipeline.runs r, pipeline.openlineage_events(r.run_id, 'postgres://b:2') e,
                 jsonb_array_elements((e->'inputs') || (e->'outputs')) d WHERE r.pipeline_name = 'ol_orders'" 2>&1)
if [ "$got" = "postgres://b:2" ]; then ok "the namespace argument overrides the setting"
else echo "$got"; fail "the namespace argument overrides the setting"; fi

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
