#!/usr/bin/env bash
# ok always succeeds, so "test && ok || fail" is an if-then-else here
# shellcheck disable=SC2015
# test/site/run.sh: the docs site test. Creates pipelines whose names need
# escaping (setup.sql), runs them, writes the site with the installed
# pg_pipeline_site, checks the command's usage errors and the raw HTML, then
# opens every page in headless Chromium (Debian's chromium, driven by
# playwright-core from the npm registry, installed into a temporary
# directory) with check.js: no console error, failed request or broken link,
# the SVGs present, and screenshots of the index and one pipeline page,
# written under PP_SITE_SHOTS (default /tmp/pg_pipeline-site-test) and printed.
# Runs against the server in PGHOST/PGPORT/PGUSER with pg_pipeline
# installable. Prints one line per check and "N passed, N failed"; exit
# status non-zero on any failure.
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
db=pp_site
trap 'rm -rf "$work"; dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
passed=0; failed=0
ok()   { echo "ok - $1"; passed=$((passed + 1)); }
fail() { echo "not ok - $1"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

shots=${PP_SITE_SHOTS:-/tmp/pg_pipeline-site-test}
bindir=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
site_cmd=$bindir/pg_pipeline_site
[ -x "$site_cmd" ] && ok "make install put pg_pipeline_site into $bindir" \
    || { fail "pg_pipeline_site is not installed in $bindir"; finish; }
for tool in dot /usr/bin/chromium npm node; do
    command -v "$tool" >/dev/null 2>&1 || { fail "$tool is missing (scripts/install-deps.sh)"; finish; }
done

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db" || { fail "createdb"; finish; }
if psql -X -q -d "$db" -f "$dir/setup.sql" >"$work/setup.out" 2>&1; then
    ok "setup.sql: pipelines with names needing escaping, run"
else
    cat "$work/setup.out"; fail "setup.sql"; finish
fi

# usage errors exit 2 and write nothing
rc=0; "$site_cmd" -d "$db" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] && ok "without -o: exit 2" || fail "without -o: exit $rc, wanted 2"
rc=0; "$site_cmd" -d "$db" -o "$work/x" -n zero >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] && ok "-n zero: exit 2" || fail "-n zero: exit $rc, wanted 2"
rc=0; "$site_cmd" -d pp_site_no_such_db -o "$work/x" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 1 ] && ok "an unknown database: exit 1" || fail "an unknown database: exit $rc, wanted 1"

# the site, written by the installed command through libpq's environment
site=$work/site
if PGDATABASE=$db "$site_cmd" -o "$site" >"$work/site.out" 2>&1; then
    ok "pg_pipeline_site -o DIR (database from PGDATABASE): $(tail -n 1 "$work/site.out")"
else
    cat "$work/site.out"; fail "pg_pipeline_site failed"; finish
fi
# the raw HTML never carries a name's markup unescaped
if grep -l -e '<script' -e '<b>orders' -e '<i>small' "$site"/*.html >"$work/raw.out"; then
    fail "unescaped markup in: $(tr '\n' ' ' <"$work/raw.out")"
else
    ok "no page contains a name's markup unescaped"
fi
grep -q '&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;orders&quot;' "$site/index.html" \
    && ok "the index carries the name escaped" || fail "the index lacks the escaped name"
shot_page=$(psql -X -qAt -d "$db" -c "SELECT 'pipeline-' || id || '.html' FROM pipeline.pipelines WHERE name LIKE '<script>%'")
grep -q '<tr class="check"><td>&lt;i&gt;small&lt;/i&gt; &amp; &quot;amounts&quot; <span class="muted">range, quarantine</span></td><td><span class="badge st-ok">passed</span></td><td>0 failing rows in run ' "$site/$shot_page" \
    && ok "the checks card shows the data check, escaped, and what it came to in the last run" \
    || fail "the checks card lacks the data check"
grep -q -E '<td>quarantine</td><td><span class="badge st-failed">[0-9]+ open</span>' "$site/$shot_page" \
    && ok "the checks card counts the rows open in quarantine" || fail "the checks card lacks the quarantine"
if grep -l -E '(src|href)="(https?:)?//' "$site"/*.html >"$work/ext.out"; then
    fail "external assets in: $(tr '\n' ' ' <"$work/ext.out")"
else
    ok "no external assets"
fi

# which page to photograph, and which has a missing relation
psql -X -qAt -d "$db" >"$work/expect.json" <<'EOF' || fail "expect.json"
SELECT json_build_object(
    'names', (SELECT json_agg(name ORDER BY name) FROM pipeline.pipelines),
    'shot', (SELECT 'pipeline-' || id || '.html' FROM pipeline.pipelines WHERE name LIKE '<script>%'),
    'dotted', (SELECT 'pipeline-' || id || '.html' FROM pipeline.pipelines WHERE name LIKE 'broken%'))
EOF

# playwright-core from the npm registry; the browser is Debian's chromium
if ! (cd "$work" && npm install --silent --no-audit --no-fund playwright-core@1 >"$work/npm.out" 2>&1); then
    cat "$work/npm.out"; fail "could not install playwright-core from npm"; finish
fi
export NODE_PATH="$work/node_modules"
node "$dir/check.js" "$site" "$shots" "$work/expect.json" >"$work/check.out" 2>&1
rc=$?
cat "$work/check.out"
read -r p f < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { n = $1; x = $3 } END { print n + 0, (x == "" ? 1 : x) }' "$work/check.out")
passed=$((passed + p)); failed=$((failed + f))
[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || fail "check.js exited $rc"
rm -rf "$shots/site"; cp -r "$site" "$shots/site" 2>/dev/null && echo "site: $shots/site"
finish
