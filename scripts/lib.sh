# scripts/lib.sh
#
# Shared helpers for scripts/test.sh, scripts/demo.sh and bench/run.sh:
# building the extension quietly, finding a free port, and starting the
# throwaway PostgreSQL 15 server (pg_virtualenv) they all run against.
# Source it; it defines functions and a few variables and runs nothing.
# shellcheck shell=bash

PP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PP_PGVERSION=15
PP_BINDIR=/usr/lib/postgresql/$PP_PGVERSION/bin
# shellcheck disable=SC2034  # used by the scripts that source this file
PP_PGXS=/usr/lib/postgresql/$PP_PGVERSION/lib/pgxs

# Server settings every throwaway cluster gets. pg_cron is preloaded so that
# scheduling (a later issue) can be tested against the same server; the
# extension itself does not need it yet. max_prepared_transactions lets
# sql/39_parallel's runs prepare their parts (docs/parallel.md).
PP_SERVER_OPTS=(
    -o "shared_preload_libraries=pg_cron"
    -o "cron.database_name=postgres"
    -o "max_worker_processes=16"
    -o "max_prepared_transactions=8"
)

pp_log() { printf '%s\n' "$*"; }
pp_err() { printf '%s\n' "$*" >&2; }

# pp_install_deps installs the Debian packages the project needs (quiet and
# fast when they are all there already).
pp_install_deps() {
    bash "$PP_ROOT/scripts/install-deps.sh"
}

# pp_build runs make with the given targets in the repository, printing the
# log only when it fails or when the compiler warned, so that a clean build
# prints nothing. Compiles with one job: the machine has two cores.
pp_build() {
    local log rc=0
    log=$(mktemp -t pg_pipeline-build.XXXXXX)
    (cd "$PP_ROOT" && for target in "$@"; do
        make --no-print-directory PG_CONFIG="$PP_BINDIR/pg_config" "$target" || exit $?
    done) >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] && grep -q 'warning:' "$log"; then
        pp_err "build: the compiler warned (warnings are errors)"
        rc=1
    fi
    if [ "$rc" -ne 0 ]; then
        pp_err "build: make $* failed (exit $rc); log follows"
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}

# pp_port_free succeeds when nothing listens on the given port, neither on
# the Unix socket directory PostgreSQL uses nor on TCP localhost.
pp_port_free() {
    local port=$1
    [ -e "/var/run/postgresql/.s.PGSQL.$port" ] && return 1
    [ -e "/tmp/.s.PGSQL.$port" ] && return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        return 1
    fi
    return 0
}

# pp_free_port prints a free port above the usual PostgreSQL ones, starting
# at a point derived from the process id so that concurrent scripts (a test
# run and a benchmark, say) rarely even try the same one.
pp_free_port() {
    local base=$((55432 + ($$ % 200))) i port
    for ((i = 0; i < 400; i++)); do
        port=$((55432 + ((base - 55432 + i) % 400)))
        if pp_port_free "$port"; then
            echo "$port"
            return 0
        fi
    done
    pp_err "no free port found in 55432-55831"
    return 1
}

# pp_stop_stray PORT stops and removes a pg_virtualenv cluster still
# listening on PORT, a safety net for when pg_virtualenv itself was killed
# before its own cleanup ran. Only clusters in pg_virtualenv's temporary
# directories are touched.
pp_stop_stray() {
    local lock=/var/run/postgresql/.s.PGSQL.$1.lock datadir
    [ -f "$lock" ] || return 0
    datadir=$(sed -n 2p "$lock")
    case $datadir in
        /tmp/pg_virtualenv.*/data/*) ;;
        *) return 0 ;;
    esac
    pp_err "stopping leftover test cluster $datadir"
    runuser -u postgres -- "$PP_BINDIR/pg_ctl" -D "$datadir" -m immediate stop \
        >/dev/null 2>&1 || true
    rm -rf "${datadir%%/data/*}"
}

# pp_virtualenv runs a command inside a throwaway PostgreSQL 15 cluster
# (pg_virtualenv -t: data directory in a private temporary directory, so it
# never collides with another cluster on this machine, and is dropped when
# the command ends, fails or is interrupted). UTF-8, C.UTF-8 locale, for
# output that does not depend on the machine's locale. PGHOST, PGPORT,
# PGUSER (postgres, a superuser), PGDATABASE and PGPASSWORD are set for the
# command. Extra server settings: PP_EXTRA_OPTS (array of -o 'guc=value').
# SIGPIPE is ignored so that a closed output pipe (| head) cannot kill
# pg_virtualenv in the middle of its cleanup; pg_virtualenv runs in a session
# of its own so that INT, TERM or HUP to the caller stop the whole command
# and then drop the cluster.
pp_virtualenv() {
    local port pid rc=0
    port=$(pp_free_port) || return 1
    (
        trap '' PIPE
        PGPORT=$port exec setsid pg_virtualenv -t -v "$PP_PGVERSION" \
            -i "--encoding=UTF8 --locale=C.UTF-8" \
            "${PP_SERVER_OPTS[@]}" ${PP_EXTRA_OPTS[@]+"${PP_EXTRA_OPTS[@]}"} \
            "$@"
    ) </dev/null &
    pid=$!
    # shellcheck disable=SC2064  # expand pid and port now
    trap "kill -TERM -- -$pid 2>/dev/null; wait $pid; pp_stop_stray $port; exit 130" INT TERM HUP
    wait "$pid" || rc=$?
    trap - INT TERM HUP
    pp_stop_stray "$port"
    return "$rc"
}
