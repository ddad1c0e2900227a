#!/usr/bin/env bash
# scripts/test.sh
#
# THE test command of pg_pipeline: installs what is missing (apt), builds the
# extension from clean with warnings as errors, installs it, starts one
# throwaway PostgreSQL 15 server (pg_virtualenv) and runs every suite against
# it:
#
#   layers       test/layers/check.py: src/ keeps its layers (before the server)
#   options      test/options/check_apply_doc.sh: apply.md lists the option table's keys
#   deb          test/deb/run.sh: builds the Debian package from a copy under
#                /tmp, runs CREATE EXTENSION and a pipeline from its files
#                on a server of its own (before the shared server)
#   pg_regress   make installcheck (REGRESS in the Makefile: sql/*.sql)
#   isolation    pg_isolation_regress on test/isolation/specs/*.spec
#   pgtap        each test/pgtap/*.sql in a fresh database of its own
#   perl-tap     test/t/*.pl (PostgreSQL::Test::Cluster), as user postgres
#   openlineage  test/openlineage/run.sh: the events against the official schemas
#   openlineage-delivery
#                test/t/013_openlineage_delivery.pl: the sender posts to a
#                collector on 127.0.0.1 that validates what it receives
#   site         test/site/run.sh: pg_pipeline_site's pages in headless Chromium
#   citus        test/t/020_citus.pl on a coordinator and two worker nodes;
#                Citus 13.2.2 is built first when missing
#                (../shared/citus/install-citus.sh): if it cannot be built
#                the suite fails, it is never skipped
#   fuzz, sqlsmith, kill-9, soak
#                the reliability suite: the files of test/t/ whose header
#                says "# suite: NAME" (test/README.md), each its own line
#
# It prints one summary line per suite, details only for what failed, and as
# its last line "N passed, N failed" (tests for pg_regress and isolation,
# assertions for the TAP suites). It exits non-zero when anything failed or a
# suite could not run. The server is dropped when the run ends, however it
# ends. Usage: bash scripts/test.sh   (as root; .ci/run calls exactly this)
#
# Environment: PP_TEST_TIMEOUT (seconds per suite run or per TAP file,
# default 1200).
set -uo pipefail

# shellcheck source=scripts/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

TEST_TIMEOUT=${PP_TEST_TIMEOUT:-1200}
PG_REGRESS=$PP_PGXS/src/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PP_PGXS/src/test/isolation/pg_isolation_regress

# record SUITE PASSED FAILED [NOTE] adds a suite's counts to the tally that
# the outer script sums, and prints the suite's summary line.
record() {
    local suite=$1 passed=$2 failed=$3 note=${4:-}
    printf '%s %d %d\n' "$suite" "$passed" "$failed" >>"$PP_COUNTS"
    printf '%-11s %d passed, %d failed%s\n' "$suite" "$passed" "$failed" \
        "${note:+  ($note)}"
}

# show_file TITLE FILE [MAXLINES] prints a file indented under a heading,
# cut to its last MAXLINES lines.
show_file() {
    local title=$1 file=$2 max=${3:-400} lines
    [ -s "$file" ] || return 0
    lines=$(wc -l <"$file")
    echo "---- $title"
    if [ "$lines" -gt "$max" ]; then
        echo "     (last $max of $lines lines)"
    fi
    tail -n "$max" "$file" | sed 's/^/    /'
    echo "----"
}

# show_diffs_or_log TOOL LOG DIFFS... prints the failed tests and the diffs
# of a pg_regress-style run, or its whole log when it left no diffs (it could
# not connect, crashed, timed out).
show_diffs_or_log() {
    local tool=$1 log=$2 d shown=0
    shift 2
    for d in "$@"; do
        if [ -s "$d" ]; then
            grep -E '\.\.\. (FAILED|failed)' "$log" | sed "s/^/$tool: /"
            show_file "$tool diffs ($d)" "$d" 1000
            shown=1
        fi
    done
    [ "$shown" -eq 1 ] || show_file "$tool output" "$log" 200
}

# count_regress LOG prints "passed failed" from pg_regress's (PostgreSQL 15)
# per-test lines: "test name ... ok", "     name ... FAILED".
count_regress() {
    awk '
        /\.\.\. ok/                   { p++ }
        /\.\.\. failed \(ignored\)/   { p++; next }
        /\.\.\. (FAILED|failed)/      { f++ }
        END { print p + 0, f + 0 }' "$1"
}

# count_tap OUT RC prints "passed failed" from a TAP stream: one per
# top-level "ok" / "not ok" ("not ok ... # TODO" passes), plus one failure per
# planned test that never ran; a stream that died (non-zero exit, bail out,
# no plan) counts at least one failure.
count_tap() {
    awk -v rc="$2" '
        /^ok([ \t]|$)/      { p++; n++ }
        /^not ok([ \t]|$)/  { if ($0 ~ /#[ \t]*TODO/) p++; else f++; n++ }
        /^1\.\.[0-9]+/      { sub(/^1\.\./, ""); plan = $1 + 0; hasplan = 1 }
        /^Bail out!/        { bail = 1 }
        END {
            if (hasplan && plan > n) f += plan - n
            if ((rc != 0 || bail || !hasplan) && f == 0) f = 1
            print p + 0, f + 0
        }' "$1"
}

# suite_regress runs the pg_regress suites listed in the Makefile's REGRESS.
suite_regress() {
    local tests=() f log rc=0 passed failed
    for f in sql/*.sql; do
        [ -e "$f" ] || continue
        case $(basename "$f") in pg_pipeline--*) continue ;; esac
        tests+=("$f")
    done
    if [ "${#tests[@]}" -eq 0 ]; then
        record pg_regress 0 0 "no tests in sql/"
        return
    fi
    rm -rf results regression.diffs regression.out
    log=$(mktemp -t pp-regress.XXXXXX)
    timeout -k 10 "$TEST_TIMEOUT" \
        make --no-print-directory PG_CONFIG="$PP_BINDIR/pg_config" installcheck \
        ISOLATION= TAP_TESTS= \
        >"$log" 2>&1 || rc=$?
    read -r passed failed < <(count_regress "$log")
    if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
        show_diffs_or_log "pg_regress" "$log" results/regression.diffs regression.diffs
    fi
    local note=""
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
        note="pg_regress exited $rc"
        [ "$rc" -eq 124 ] && note="timed out after ${TEST_TIMEOUT}s"
    fi
    record pg_regress "$passed" "$failed" "$note"
    rm -f "$log"
}

# suite_isolation runs every isolation spec with pg_isolation_regress.
suite_isolation() {
    local specs=() f out rc=0 passed failed
    for f in test/isolation/specs/*.spec; do
        [ -e "$f" ] && specs+=("$(basename "$f" .spec)")
    done
    if [ "${#specs[@]}" -eq 0 ]; then
        record isolation 0 0 "no specs in test/isolation/specs/"
        return
    fi
    out=$(mktemp -d -t pp-isolation.XXXXXX)
    timeout -k 10 "$TEST_TIMEOUT" \
        "$PG_ISOLATION_REGRESS" --bindir="$PP_BINDIR" \
        --inputdir=test/isolation --outputdir="$out" \
        --dbname=isolation_regression --load-extension=pg_pipeline \
        "${specs[@]}" >"$out/log" 2>&1 || rc=$?
    read -r passed failed < <(count_regress "$out/log")
    if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
        show_diffs_or_log "pg_isolation_regress" "$out/log" "$out/regression.diffs"
    fi
    local note=""
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
        note="pg_isolation_regress exited $rc"
        [ "$rc" -eq 124 ] && note="timed out after ${TEST_TIMEOUT}s"
    fi
    record isolation "$passed" "$failed" "$note"
    rm -rf "$out"
}

# suite_pgtap runs each pgTAP file in a fresh database of its own, with the
# psql settings pg_prove uses, and counts its assertions.
suite_pgtap() {
    local files=() f db out rc p fl passed=0 failed=0 bad=()
    for f in test/pgtap/*.sql; do
        [ -e "$f" ] && files+=("$f")
    done
    if [ "${#files[@]}" -eq 0 ]; then
        record pgtap 0 0 "no files in test/pgtap/"
        return
    fi
    out=$(mktemp -t pp-pgtap.XXXXXX)
    for f in "${files[@]}"; do
        db=pgtap_$(basename "$f" .sql | tr -c 'A-Za-z0-9_\n' '_' | cut -c1-50)
        rc=0
        if ! { dropdb --if-exists "$db" && createdb "$db"; } >"$out" 2>&1; then
            rc=1
        else
            timeout -k 10 "$TEST_TIMEOUT" \
                psql --no-psqlrc --no-align --quiet --tuples-only \
                --pset pager=off --set ON_ERROR_STOP=1 \
                -d "$db" -f "$f" >"$out" 2>&1 || rc=$?
        fi
        read -r p fl < <(count_tap "$out" "$rc")
        passed=$((passed + p))
        failed=$((failed + fl))
        if [ "$fl" -ne 0 ]; then
            bad+=("$(basename "$f")")
            [ "$rc" -eq 124 ] && echo "pgtap: $f timed out after ${TEST_TIMEOUT}s"
            show_file "pgtap $f ($p passed, $fl failed, psql exit $rc)" "$out" 300
        fi
        dropdb --if-exists "$db" >/dev/null 2>&1 || true
    done
    rm -f "$out"
    record pgtap "$passed" "$failed" \
        "${#files[@]} files${bad[0]:+; failing: ${bad[*]}}"
}

# perl_tap_suite FILE prints the suite a TAP file belongs to: NAME from a
# "# suite: NAME" line in its header, else perl-tap.
perl_tap_suite() {
    local suite
    suite=$(sed -n '1,10s/^# suite: *\([a-z0-9-]*\).*/\1/p' "$1" | head -n 1)
    echo "${suite:-perl-tap}"
}

# suite_perl_tap [SUITE] runs the files of test/t/*.pl that belong to SUITE
# (default perl-tap) with PostgreSQL's Perl test modules. They run initdb,
# which refuses root, so they run as user postgres on a copy of the
# repository that postgres owns (TESTDIR, tmp_check/ and logs live there).
suite_perl_tap() {
    local suite=${1:-perl-tap} files=() f work out err rc p fl passed=0 failed=0 bad=()
    for f in test/t/*.pl; do
        [ -e "$f" ] && [ "$(perl_tap_suite "$f")" = "$suite" ] && files+=("$f")
    done
    if [ "${#files[@]}" -eq 0 ]; then
        record "$suite" 0 0 "no files in test/t/"
        return
    fi
    work=$(mktemp -d -t pp-perl-tap.XXXXXX)
    tar -C "$PP_ROOT" --exclude=./.git --exclude=./results -cf - . |
        tar -C "$work" -xf -
    # the released versions, each on an installation of its own, for the
    # upgrade test (test/t/010_upgrade.pl); a failed build fails that test
    bash "$PP_ROOT/test/upgrade/old-install.sh" "$work/.old-installs" >"$work/.old-installs.log" 2>&1 ||
        show_file "building the released versions for the upgrade test failed" "$work/.old-installs.log" 100
    chown -R postgres:postgres "$work"
    out=$work/.out
    err=$work/.err
    for f in "${files[@]}"; do
        rc=0
        (cd "$work" && timeout -k 10 "$TEST_TIMEOUT" \
            runuser -u postgres -- env \
            -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGPASSWORD \
            -u PGSYSCONFDIR -u PGSERVICE -u PGHOSTADDR \
            PATH="$PP_BINDIR:$PATH" TESTDIR="$work" PG_REGRESS="$PG_REGRESS" \
            PG_CONFIG="$PP_BINDIR/pg_config" PP_OLD_INSTALLS="$work/.old-installs" \
            PP_NODE_PATH="$PP_NODE_DIR/node_modules" PP_OL_SPEC="$PP_OL_SPEC" \
            perl -I "$PP_PGXS/src/test/perl" -I "$work/test/t" "$f") \
            >"$out" 2>"$err" || rc=$?
        read -r p fl < <(count_tap "$out" "$rc")
        passed=$((passed + p))
        failed=$((failed + fl))
        if [ "$fl" -ne 0 ]; then
            bad+=("$(basename "$f")")
            [ "$rc" -eq 124 ] && echo "$suite: $f timed out after ${TEST_TIMEOUT}s"
            show_file "$suite $f: TAP ($p passed, $fl failed, exit $rc)" "$out" 200
            show_file "$suite $f: diagnostics" "$err" 200
            local logs
            logs=$(find "$work/tmp_check/log" -name '*.log' 2>/dev/null | sort)
            for l in $logs; do
                show_file "$suite server log $(basename "$l")" "$l" 60
            done
        fi
        rm -rf "$work/tmp_check"
    done
    rm -rf "$work"
    record "$suite" "$passed" "$failed" \
        "${#files[@]} files${bad[0]:+; failing: ${bad[*]}}"
}

# ensure_ajv installs ajv-cli and ajv-formats from the npm registry, once
# per test run, into PP_NODE_DIR (readable by user postgres, which runs the
# delivery test's collector); false when npm cannot.
ensure_ajv() {
    [ -x "$PP_NODE_DIR/node_modules/.bin/ajv" ] && return 0
    command -v npm >/dev/null 2>&1 || return 1
    (cd "$PP_NODE_DIR" && npm install --silent --no-audit --no-fund ajv-cli@5 ajv-formats@2 >/dev/null 2>&1) || return 1
    chmod -R a+rX "$PP_NODE_DIR"
}

# suite_openlineage validates the events of pipeline.openlineage_events
# against the project's JSON Schema with ajv-cli from the npm registry
# (test/openlineage/run.sh); it needs node, npm and python3.
suite_openlineage() {
    local out rc=0 p fl
    if ! ensure_ajv || ! command -v python3 >/dev/null 2>&1; then
        record openlineage 0 1 "npm or python3 is missing, or ajv could not be installed"
        return
    fi
    out=$(mktemp -t pp-openlineage.XXXXXX)
    AJV="$PP_NODE_DIR/node_modules/.bin/ajv" NODE_PATH="$PP_NODE_DIR/node_modules" \
        timeout -k 10 "$TEST_TIMEOUT" bash test/openlineage/run.sh >"$out" 2>&1 || rc=$?
    read -r p fl < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { n = $1; f = $3 }
                         END { print n + 0, (NR && f != "" ? f : 1) }' "$out")
    if [ "$rc" -ne 0 ] && [ "$fl" -eq 0 ]; then
        fl=1
    fi
    if [ "$fl" -ne 0 ]; then
        show_file "openlineage (exit $rc)" "$out" 200
    fi
    rm -f "$out"
    record openlineage "$p" "$fl"
}

# suite_site writes the docs site of a database of pipelines whose names
# need escaping with the installed pg_pipeline_site and opens every page in
# headless Chromium (test/site/run.sh); it needs graphviz, chromium and npm.
suite_site() {
    local out rc=0 p fl
    out=$(mktemp -t pp-site.XXXXXX)
    timeout -k 10 "$TEST_TIMEOUT" bash test/site/run.sh >"$out" 2>&1 || rc=$?
    read -r p fl < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { n = $1; f = $3 }
                         END { print n + 0, (NR && f != "" ? f : 1) }' "$out")
    if [ "$rc" -ne 0 ] && [ "$fl" -eq 0 ]; then
        fl=1
    fi
    if [ "$fl" -ne 0 ]; then
        show_file "site (exit $rc)" "$out" 200
    fi
    record site "$p" "$fl" "$(grep -m 1 '^screenshot: ' "$out" | sed 's/^screenshot: //; s:/[^/]*$::' | sed 's/^/screenshots in /')"
    rm -f "$out"
}

# suite_citus builds and installs Citus into the server's PostgreSQL when it
# is missing (../shared/citus/install-citus.sh, idempotent), then runs the
# TAP files of suite citus; a Citus that cannot be built fails the suite.
suite_citus() {
    local log
    log=$(mktemp -t pp-citus-build.XXXXXX)
    if ! PG_CONFIG="$PP_BINDIR/pg_config" timeout -k 10 "$TEST_TIMEOUT" \
        bash "$PP_ROOT/../shared/citus/install-citus.sh" >"$log" 2>&1; then
        show_file "citus: building Citus failed" "$log" 100
        record citus 0 1 "Citus could not be built"
        rm -f "$log"
        return
    fi
    rm -f "$log"
    suite_perl_tap citus
}

# in_cluster runs every suite against the server pg_virtualenv started.
in_cluster() {
    cd "$PP_ROOT" || exit 1
    if ! psql -X -qAtc 'SELECT 1' >/dev/null; then
        record server 0 1 "cannot connect to the test server"
        return 1
    fi
    echo "server: $(psql -X -qAtc 'SHOW server_version') on port ${PGPORT:-?}"
    local datadir
    datadir=$(psql -X -qAtc 'SHOW data_directory')
    suite_regress
    suite_isolation
    suite_pgtap
    suite_perl_tap perl-tap
    suite_openlineage
    ensure_ajv
    suite_perl_tap openlineage-delivery
    suite_site
    suite_citus
    suite_perl_tap fuzz
    suite_perl_tap sqlsmith
    suite_perl_tap kill-9
    suite_perl_tap soak
    show_server_trouble "$datadir"
    return 0
}

# show_server_trouble DATADIR prints, when a suite failed, the server log
# lines that tell of a crash or a serious error (pg_virtualenv -t keeps the
# log beside the data directory), so that a CI log explains a "server closed
# the connection".
show_server_trouble() {
    local log=${1%%/data/*}/log/postgresql-$PP_PGVERSION-regress.log lines
    [ -f "$log" ] || return 0
    awk '$3 > 0 { bad = 1 } END { exit !bad }' "$PP_COUNTS" || return 0
    lines=$(grep -E 'PANIC|FATAL|TRAP|terminated by signal|was terminated|server process .* exited|could not record failed run' "$log" |
        grep -v -E 'terminating connection due to administrator command|the database system is (starting up|shutting down)' | tail -n 50)
    if [ -n "$lines" ]; then
        echo "---- server log: crashes and serious errors"
        printf '%s\n' "$lines" | sed 's/^/    /'
        echo "----"
    fi
}

# suite_layers checks that src/ keeps its layers: no file includes a header
# of a higher layer, no include cycle, no C file past 800 lines
# (test/layers/check.py, one check per file).
suite_layers() {
    local out rc=0 passed failed
    out=$(mktemp -t pp-layers.XXXXXX)
    python3 test/layers/check.py src >"$out" 2>&1 || rc=$?
    read -r passed failed < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1, $3 }' "$out")
    passed=${passed:-0}
    failed=${failed:-1}
    if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
        grep -v '^ok' "$out" | sed 's/^/layers: /'
    fi
    record layers "$passed" "$failed"
    rm -f "$out"
}

# suite_options checks that docs/reference/apply.md lists exactly the keys of
# the option table (test/options/check_apply_doc.sh).
suite_options() {
    local out rc=0 passed failed
    out=$(mktemp -t pp-options.XXXXXX)
    bash test/options/check_apply_doc.sh >"$out" 2>&1 || rc=$?
    read -r passed failed < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1, $3 }' "$out")
    passed=${passed:-0}
    failed=${failed:-1}
    if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
        sed 's/^/options: /' "$out"
    fi
    record options "$passed" "$failed"
    rm -f "$out"
}

# suite_deb builds the Debian package and tests its installed files on a
# throwaway server of its own (test/deb/run.sh, one TAP line per check).
suite_deb() {
    local out rc=0 passed failed
    out=$(mktemp -t pp-deb-out.XXXXXX)
    timeout -k 10 "$TEST_TIMEOUT" bash test/deb/run.sh >"$out" 2>&1 || rc=$?
    read -r passed failed < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { n = $1; f = $3 }
                                   END { print n + 0, (f != "" ? f : 1) }' "$out")
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
    fi
    if [ "$failed" -ne 0 ]; then
        show_file "deb (exit $rc)" "$out" 200
    fi
    record deb "$passed" "$failed"
    rm -f "$out"
}

# finish prints the grand total as the last line and exits with the verdict.
finish() {
    local passed failed suites
    read -r passed failed suites < <(awk '
        { p += $2; f += $3; n++ } END { print p + 0, f + 0, n + 0 }' "$PP_COUNTS")
    rm -f "$PP_COUNTS"
    if [ "$suites" -eq 0 ]; then
        failed=$((failed + 1))
    fi
    echo "$passed passed, $failed failed"
    exit $((failed > 0 ? 1 : 0))
}

main() {
    cd "$PP_ROOT" || exit 1
    PP_COUNTS=$(mktemp -t pp-counts.XXXXXX)
    export PP_COUNTS
    # npm packages for the OpenLineage suites (ensure_ajv), and the official
    # OpenLineage schemas beside the repository
    PP_NODE_DIR=$(mktemp -d -t pp-node.XXXXXX)
    chmod 755 "$PP_NODE_DIR"
    trap 'rm -rf "$PP_NODE_DIR"' EXIT
    PP_OL_SPEC=$(cd "$PP_ROOT/../shared/openlineage/spec" 2>/dev/null && pwd || echo /nonexistent)
    export PP_NODE_DIR PP_OL_SPEC

    if ! pp_install_deps; then
        record deps 0 1 "could not install the Debian packages"
        finish
    fi
    if ! pp_build clean all install; then
        record build 0 1 "make clean all install failed"
        finish
    fi
    echo "build: ok (make clean all install, -Werror)"
    suite_layers
    suite_options
    suite_deb

    local rc=0
    pp_virtualenv bash "$PP_ROOT/scripts/test.sh" --in-cluster || rc=$?
    if [ "$rc" -ne 0 ] && ! awk '$3 > 0 { bad = 1 } END { exit !bad }' "$PP_COUNTS"; then
        record server 0 1 "the test server could not be run (pg_virtualenv exited $rc)"
    fi
    finish
}

if [ "${1:-}" = "--in-cluster" ]; then
    in_cluster
else
    main "$@"
fi
