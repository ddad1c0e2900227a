#!/usr/bin/env bash
# scripts/install-deps.sh
#
# Installs, from Debian 12's own repositories, everything pg_pipeline needs to
# build, test, demo and benchmark: the compiler, PostgreSQL 15 with its server
# headers, pg_cron, pgTAP (extension and pg_prove), IPC::Run and DBD::Pg for
# the Perl TAP tests, libcurl4-openssl-dev for the OpenLineage sender's HTTP
# posts, and sqlsmith for the reliability suite; graphviz (dot -Tsvg) for the docs
# site and chromium to open it in the site test; dpkg-dev, debhelper, fakeroot
# and postgresql-server-dev-all (pg_buildext) to build the Debian package
# (test/deb/run.sh). Idempotent: when
# every package is already installed it only asks dpkg and returns; apt-get
# update runs once, and only if something is missing.
set -euo pipefail

PACKAGES=(
    build-essential
    postgresql-15
    postgresql-server-dev-15
    libcurl4-openssl-dev
    postgresql-contrib
    postgresql-15-cron
    postgresql-15-pgtap
    pgtap
    libipc-run-perl
    libdbd-pg-perl
    sqlsmith
    dpkg-dev
    debhelper
    fakeroot
    postgresql-server-dev-all
    python3
    nodejs
    graphviz
    chromium
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done

# npm (for the OpenLineage schema test) comes with some nodejs builds and is
# a package of its own in Debian's
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run this script as root (or install them with sudo apt-get install)" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp -t pg_pipeline-deps.XXXXXX)
trap 'rm -f "$log"' EXIT
if ! apt-get update -qq >"$log" 2>&1 ||
   ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "install-deps: apt-get failed" >&2
    exit 1
fi
echo "install-deps: done"
