#!/usr/bin/env bash
# scripts/demo.sh
#
# THE main job of pg_pipeline, end to end on a fresh Debian 12 machine: installs
# what is missing (apt), builds and installs the extension, starts a throwaway
# PostgreSQL 15 server (pg_virtualenv) and runs scripts/demo.sql on it: real
# pipelines through the three medallion stages (raw staging.orders -> cleaned
# core.orders -> aggregated mart.daily_revenue) on generated data, two batches,
# printing the runs, the registry, the statements a run executes and the
# resulting tables; at the end it writes the docs site of the database
# (pg_pipeline_site) to /tmp/pg_pipeline-demo-site (or PP_DEMO_SITE), which
# stays after the server is dropped. The server preloads pg_pipeline: the aggregated stage is
# run by a background worker whenever the cleaned stage lands new rows, and
# the cleaned stage runs on a pg_cron schedule once the demo sets one; data
# contracts send a bad row to quarantine, and it is fixed and replayed; a
# partner feed of text is typed at the boundary, its unparsable values
# quarantined with their reasons, and an unusual batch raises an anomaly alert;
# personal data is found, classified and masked at load, and a customer is
# forgotten on request; the aggregated stage is a rollup, and a customer
# dimension keeps its history (snapshot). Every
# run's OpenLineage events are posted by the sender worker to a stand-in
# collector on 127.0.0.1 (scripts/demo_collector.py), and the demo shows
# what it received. The server is dropped at the end.
# Usage: bash scripts/demo.sh   (as root)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

if [ "${1:-}" = "--in-cluster" ]; then
    cd "$PP_ROOT"
    psql -X --set ON_ERROR_STOP=1 --pset pager=off -f scripts/demo.sql
    # the docs site of the demo's database, written outside the server's
    # data directory so that it outlives the throwaway server
    echo
    echo "== writing the docs site of this database (pg_pipeline_site, docs/site.md)"
    "$PP_BINDIR/pg_pipeline_site" -o "${PP_DEMO_SITE:-/tmp/pg_pipeline-demo-site}"
    exit 0
fi

cd "$PP_ROOT"
echo "== installing dependencies (apt, only what is missing)"
pp_install_deps
echo "== building and installing pg_pipeline (make && make install)"
pp_build all install
# a stand-in OpenLineage collector (Marquez would be the real one)
collector_port=$((20000 + RANDOM % 20000))
collected=$(mktemp -t pp-demo-openlineage.XXXXXX)
python3 "$PP_ROOT/scripts/demo_collector.py" "$collector_port" "$collected" &
collector_pid=$!
trap 'kill $collector_pid 2>/dev/null; rm -f "$collected"' EXIT
echo "== starting a throwaway PostgreSQL $PP_PGVERSION server and running scripts/demo.sql"
# The server preloads pg_pipeline, as a production server would: its
# launcher runs the pipelines downstream of a run by themselves. pg_cron
# connects to the local socket for the scheduled runs.
PP_EXTRA_OPTS=(
    -o "shared_preload_libraries=pg_cron,pg_pipeline"
    -o "pipeline.databases=postgres"
    -o "pipeline.check_interval=1"
    -o "cron.host=/var/run/postgresql"
    -o "pipeline.openlineage_url=http://127.0.0.1:$collector_port/api/v1/lineage"
    -o "pipeline.openlineage_namespace=postgres://demo.example.com:5432"
)
pp_virtualenv bash "$PP_ROOT/scripts/demo.sh" --in-cluster
echo
echo "== what the OpenLineage collector on 127.0.0.1:$collector_port received (the sender's posts, in order)"
python3 - "$collected" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for e in events:
    out = e["outputs"][0]["name"] if e.get("outputs") else ""
    print(f'{e["eventTime"][:19]}  {e["eventType"]:<8}  job {e["job"]["name"]:<10}  -> {out}')
print(f"{len(events)} events; Marquez, DataHub or OpenMetadata would take the same posts")
PY
echo "== demo finished; the throwaway server has been dropped"
echo "== the docs site stays: open ${PP_DEMO_SITE:-/tmp/pg_pipeline-demo-site}/index.html in a browser"
