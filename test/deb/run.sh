#!/usr/bin/env bash
# test/deb/run.sh
#
# Tests the Debian package: builds postgresql-15-pipeline with
# dpkg-buildpackage -us -uc (debian/, pg_buildext, the project's Makefile)
# from a copy of the tree under /tmp, so that nothing is left in the tree;
# checks the package's fields and file list (the library, the control file,
# every sql/pg_pipeline--*.sql, the Makefile's SCRIPTS); extracts it with dpkg -x over a relocated
# copy of the system's PostgreSQL 15 from which every pg_pipeline file was
# removed (PostgreSQL finds its files relative to its binaries, as in
# test/upgrade/old-install.sh), so that only the package can supply the
# extension; starts a throwaway server from that root's bin as user postgres,
# and runs CREATE EXTENSION, a pipeline run, and CREATE EXTENSION ... VERSION
# '0.1.0' then ALTER EXTENSION ... UPDATE from the installed files. Also
# checks that META.json, the control file and debian/changelog agree on the
# version. Prints "ok N - ..." / "not ok N - ..." lines and, last,
# "N passed, N failed"; exits non-zero when anything failed.
#
# Usage: bash test/deb/run.sh   (as root: initdb runs as user postgres;
# needs dpkg-dev, debhelper, fakeroot, postgresql-server-dev-all:
# scripts/install-deps.sh)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pgver=15
port=54329

passed=0
failed=0
n=0

# check DESCRIPTION COMMAND... runs COMMAND and prints one TAP line for it;
# on failure its output (kept in $work/.check) follows as "# " lines.
check() {
    local desc=$1
    shift
    n=$((n + 1))
    if "$@" >"$work/.check" 2>&1; then
        echo "ok $n - $desc"
        passed=$((passed + 1))
    else
        echo "not ok $n - $desc"
        sed 's/^/#   /' "$work/.check" | tail -n 40
        failed=$((failed + 1))
    fi
}

# finish prints the tally and exits with the verdict.
finish() {
    echo "1..$n"
    echo "$passed passed, $failed failed"
    exit $((failed > 0 ? 1 : 0))
}

work=$(mktemp -d -t pp-deb.XXXXXX)
chmod 755 "$work"
inst=$work/root
data=$work/data
sock=$work/sock

# cleanup stops the throwaway server, if it runs, and removes everything.
cleanup() {
    if [ -f "$data/postmaster.pid" ]; then
        runuser -u postgres -- "$inst/usr/lib/postgresql/$pgver/bin/pg_ctl" \
            -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
    echo "not ok 1 - run as root (initdb runs as user postgres)"
    n=1 failed=1
    finish
fi

# ---- metadata: one version everywhere
control_version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$root/pg_pipeline.control")
meta_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$root/META.json" 2>/dev/null)
deb_version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version 2>/dev/null)

# meta_fields checks META.json's PGXN fields and that the files it names exist.
meta_fields() {
    python3 - "$root" <<'EOF'
import json, os, sys
root = sys.argv[1]
m = json.load(open(os.path.join(root, "META.json")))
for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    assert key in m, "missing " + key
assert m["name"] == "pg_pipeline", m["name"]
assert m["license"] == "postgresql", m["license"]
assert m["meta-spec"]["version"] == "1.0.0", m["meta-spec"]
p = m["provides"]["pg_pipeline"]
for key in ("file", "docfile"):
    assert os.path.isfile(os.path.join(root, p[key])), p[key] + " does not exist"
assert p["version"] == m["version"], "provides version differs"
assert m["prereqs"]["runtime"]["requires"]["PostgreSQL"].startswith("15."), m["prereqs"]
EOF
}
check "META.json version ($meta_version) is the control file's default_version ($control_version)" \
    test -n "$control_version" -a "$meta_version" = "$control_version"
check "debian/changelog version ($deb_version) is $control_version-N" \
    grep -qE "^${control_version//./\\.}-[0-9]+\$" <<<"$deb_version"
check "META.json has the PGXN fields and its files exist" meta_fields
check "LICENSE is the PostgreSQL licence of pg_pipeline developers" \
    grep -q 'Copyright (c) .*pg_pipeline developers' "$root/LICENSE"
check "CHANGELOG.md has a section for $control_version" \
    grep -q "^## $control_version" "$root/CHANGELOG.md"

# ---- build from a copy
build=$work/build
src=$build/pg-pipeline-$control_version
mkdir -p "$src"
tar -C "$root" --exclude=./.git --exclude=./results --exclude=./tmp_check \
    --exclude=./output_iso --exclude=./log --exclude=./.inst \
    --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . |
    tar -C "$src" -xf -

# build_package runs dpkg-buildpackage in the copy; its log goes to
# $work/build.log, whose end is shown when it fails.
build_package() {
    (cd "$src" && timeout 900 dpkg-buildpackage -us -uc) >"$work/build.log" 2>&1 ||
        { tail -n 40 "$work/build.log"; return 1; }
}
check "debian/control is up to date with debian/control.in (pg_buildext checkcontrol)" \
    bash -c 'cd "$1" && pg_buildext checkcontrol' _ "$src"
check "dpkg-buildpackage -us -uc builds the package" build_package
deb=$build/postgresql-$pgver-pipeline_${deb_version}_$(dpkg --print-architecture).deb
check "the package is $(basename "$deb")" test -f "$deb"
if [ ! -f "$deb" ]; then
    ls "$build" | sed 's/^/#   /'
    finish
fi

# fields checks the package's name, version and dependency on the server.
fields() {
    [ "$(dpkg-deb -f "$deb" Package)" = "postgresql-$pgver-pipeline" ] &&
        [ "$(dpkg-deb -f "$deb" Version)" = "$deb_version" ] &&
        dpkg-deb -f "$deb" Depends | grep -q "postgresql-$pgver\b" ||
        { dpkg-deb -f "$deb" Package Version Depends; return 1; }
}
check "its fields: Package postgresql-$pgver-pipeline, Version $deb_version, depends on postgresql-$pgver" fields

# ---- the installed file list
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's,^\./,/,; s,/$,,' >"$work/files"
ext=/usr/share/postgresql/$pgver/extension
expected=("/usr/lib/postgresql/$pgver/lib/pg_pipeline.so" "$ext/pg_pipeline.control")
for f in "$root"/sql/pg_pipeline--*.sql; do
    expected+=("$ext/$(basename "$f")")
done
# the commands the Makefile installs into PostgreSQL's bin (SCRIPTS)
for f in $(sed -n 's/^SCRIPTS *= *//p' "$root/Makefile"); do
    expected+=("/usr/lib/postgresql/$pgver/bin/$(basename "$f")")
done
for f in "${expected[@]}"; do
    check "the package installs $f" grep -qxF "$f" "$work/files"
done

# only_expected_scripts checks that the extension directory gets exactly the
# control file and the scripts of sql/.
only_expected_scripts() {
    diff <(printf '%s\n' "${expected[@]}" | grep "^$ext/" | sort) \
         <(grep "^$ext/." "$work/files" | sort)
}
check "the package installs no other file into the extension directory" only_expected_scripts

# only_own_dirs checks that every file is under PostgreSQL's directories for
# this version or the package's docs.
only_own_dirs() {
    local f bad=0
    while read -r f; do
        case $f in
            "" | /usr | /usr/lib | /usr/share | /usr/lib/postgresql | /usr/share/postgresql | /usr/share/doc) ;;
            "/usr/lib/postgresql/$pgver" | "/usr/lib/postgresql/$pgver"/*) ;;
            "/usr/share/postgresql/$pgver" | "/usr/share/postgresql/$pgver"/*) ;;
            "/usr/share/doc/postgresql-$pgver-pipeline" | "/usr/share/doc/postgresql-$pgver-pipeline"/*) ;;
            *) echo "unexpected: $f"; bad=1 ;;
        esac
    done <"$work/files"
    return $bad
}
check "every file is under PostgreSQL $pgver's directories or the package's docs" only_own_dirs
check "the docs carry the copyright" \
    grep -qx "/usr/share/doc/postgresql-$pgver-pipeline/copyright" "$work/files"
check "the docs carry README.md" \
    grep -qx "/usr/share/doc/postgresql-$pgver-pipeline/README.md.gz" "$work/files"

# ---- a relocated PostgreSQL without pg_pipeline, then the package over it
mkdir -p "$inst/usr/lib/postgresql" "$inst/usr/share/postgresql"
cp -a "/usr/lib/postgresql/$pgver" "$inst/usr/lib/postgresql/"
cp -a "/usr/share/postgresql/$pgver" "$inst/usr/share/postgresql/"
rm -rf "$inst/usr/share/postgresql/$pgver/extension/pg_pipeline"* \
    "$inst/usr/lib/postgresql/$pgver/lib/pg_pipeline"* \
    "$inst/usr/lib/postgresql/$pgver/lib/bitcode/pg_pipeline"* \
    "$inst/usr/lib/postgresql/$pgver/bin/pg_pipeline"*
no_pg_pipeline_files() { ! find "$inst" -name 'pg_pipeline*' | grep .; }
check "the root has no pg_pipeline file before the package is extracted" no_pg_pipeline_files
check "dpkg -x extracts the package into the root" dpkg -x "$deb" "$inst"
bin=$inst/usr/lib/postgresql/$pgver/bin
relocated() {
    [ "$("$bin/pg_config" --sharedir)" = "$inst/usr/share/postgresql/$pgver" ] &&
        [ "$("$bin/pg_config" --pkglibdir)" = "$inst/usr/lib/postgresql/$pgver/lib" ] ||
        "$bin/pg_config" --sharedir --pkglibdir
}
check "the root's pg_config points into the root" relocated

# ---- a throwaway server from the root's bin
mkdir -p "$sock" "$data"
chown postgres:postgres "$sock" "$data"
pg() { runuser -u postgres -- "$@"; }
psql_as() { pg "$bin/psql" -X -v ON_ERROR_STOP=1 -qAt -h "$sock" -p "$port" -U postgres "$@"; }
check "initdb (as postgres) from the root's bin" \
    pg "$bin/initdb" -D "$data" -A trust -U postgres --no-sync
check "the server starts with shared_preload_libraries = pg_pipeline" \
    pg "$bin/pg_ctl" -D "$data" -w -t 60 -l "$sock/server.log" -o \
    "-p $port -k $sock -c listen_addresses= -c shared_preload_libraries=pg_pipeline -c max_worker_processes=16 -c fsync=off" start
if [ ! -f "$data/postmaster.pid" ]; then
    sed 's/^/#   /' "$sock/server.log" 2>/dev/null | tail -n 20
    finish
fi

# create_extension runs CREATE EXTENSION and checks the installed version.
create_extension() {
    local out
    out=$(psql_as -d postgres -c 'CREATE EXTENSION pg_pipeline' \
        -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_pipeline'") &&
        echo "$out" && [ "$out" = "$control_version" ]
}
check "CREATE EXTENSION pg_pipeline installs version $control_version" create_extension

# run_pipeline registers a merge pipeline, runs it, adds a change, a re-sent
# row, a deletion and a new row, runs it again, and checks both runs' counts
# and the target.
run_pipeline() {
    local out
    out=$(psql_as -d postgres <<'SQL'
CREATE SCHEMA staging;
CREATE SCHEMA core;
CREATE TABLE staging.orders (
    change_id   bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    amount      numeric(12,2) NOT NULL,
    is_deleted  boolean NOT NULL DEFAULT false);
INSERT INTO staging.orders (order_id, amount)
SELECT g, 10 + g % 90 FROM generate_series(1, 1000) AS g;
SELECT pipeline.create_pipeline(name => 'orders', source => 'staging.orders',
    target => 'core.orders', unique_key => ARRAY['order_id'],
    incremental_column => 'change_id', delete_column => 'is_deleted') IS NOT NULL;
SELECT pipeline.run('orders') IS NOT NULL;
INSERT INTO staging.orders (order_id, amount, is_deleted)
VALUES (1, 99, false), (2, 12, false), (3, 13, true), (1001, 21, false);
SELECT pipeline.run('orders') IS NOT NULL;
SELECT string_agg(concat_ws(' ', status, rows_read, rows_inserted, rows_updated, rows_deleted), ',' ORDER BY run_id)
  FROM pipeline.runs;
SELECT count(*) FROM core.orders;
SQL
) || { echo "$out"; return 1; }
    echo "$out"
    [ "$(echo "$out" | tail -n 2 | tr '\n' ' ')" = "succeeded 1000 1000 0 0,succeeded 4 1 1 1 1000 " ]
}
check "a pipeline runs: 1000 rows loaded, then 4 read past the watermark" run_pipeline

# library_from_root checks that the server (the postmaster, which preloads
# it) mapped pg_pipeline.so from the root, not from the system.
library_from_root() {
    local pid
    pid=$(head -n 1 "$data/postmaster.pid") &&
        grep -qF "$inst/usr/lib/postgresql/$pgver/lib/pg_pipeline.so" "/proc/$pid/maps" ||
        { echo "postmaster $pid:"; grep pg_pipeline "/proc/$pid/maps" 2>&1; return 1; }
}
check "the server loaded pg_pipeline.so from the root" library_from_root

# upgrade creates the extension at 0.1.0 in a database of its own and updates
# it with the installed upgrade scripts.
upgrade() {
    local out
    psql_as -d postgres -c 'CREATE DATABASE upgraded' &&
        out=$(psql_as -d upgraded -c "CREATE EXTENSION pg_pipeline VERSION '0.1.0'" \
            -c 'ALTER EXTENSION pg_pipeline UPDATE' \
            -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_pipeline'") &&
        echo "$out" && [ "$out" = "$control_version" ]
}
check "CREATE EXTENSION ... VERSION '0.1.0', then ALTER EXTENSION ... UPDATE to $control_version" upgrade
no_crash() { ! grep -E 'PANIC|TRAP|terminated by signal' "$sock/server.log"; }
check "the server log has no crash" no_crash
check "the server stops" pg "$bin/pg_ctl" -D "$data" -w -t 60 -m fast stop
finish
