# bench/private_cluster.sh: sourced by the load benchmarks (checks.sh,
# masks.sh, typed_loads.sh, idle.sh, initial_load.sh, scale.sh, parallel.sh) with
# BENCH_NAME and BENCH_PORT set. Builds this tree, installs it into a
# directory of its own (never into the system's PostgreSQL), starts one
# throwaway cluster from it with the benchmarks' settings (BENCH_PRELOAD,
# when set, is its shared_preload_libraries; BENCH_CONF, more lines of
# postgresql.conf), stops and removes it on exit, and defines q (psql on
# it), timed (one statement's time after a CHECKPOINT, in a fresh
# session), median, ratio, install_peer (builds a peer's archive from
# ../shared/peers into the same private directory) and write_section
# (puts a section between its markers in docs/benchmarks.md).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${BENCH_ROWS:-1000000}
REPS=${BENCH_REPS:-5}
REPORT=${BENCH_REPORT:-$ROOT/docs/benchmarks.md}
PGBIN=$(pg_config --bindir)
WORK=$(mktemp -d "/tmp/pp-bench-$BENCH_NAME.XXXXXX")
chmod 755 "$WORK"
PORT=${PORT:-$BENCH_PORT}

as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
    [ -d "$WORK/data" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building and installing into $WORK/inst"
make -s -C "$ROOT" >/dev/null
make -s -C "$ROOT" install DESTDIR="$WORK/inst" >/dev/null
chmod -R a+rX "$WORK"
mkdir -p "$WORK/data" && chown postgres "$WORK" "$WORK/data"
as_pg "$PGBIN/initdb" -D "$WORK/data" -A trust -U postgres >/dev/null
cat >>"$WORK/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
extension_destdir = '$WORK/inst'
dynamic_library_path = '$WORK/inst$(pg_config --pkglibdir):\$libdir'
max_worker_processes = 16
shared_buffers = 1GB
max_wal_size = 16GB
checkpoint_timeout = 1h
autovacuum = off
max_parallel_workers_per_gather = 0
work_mem = 64MB
CONF
if [ -n "${BENCH_PRELOAD:-}" ]; then
    printf "shared_preload_libraries = '%s'\ncron.database_name = 'postgres'\n" "$BENCH_PRELOAD" \
        >>"$WORK/data/postgresql.conf"
fi
# a benchmark's own settings (BENCH_CONF: lines of postgresql.conf)
[ -n "${BENCH_CONF:-}" ] && printf '%s\n' "$BENCH_CONF" >>"$WORK/data/postgresql.conf"
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w start >/dev/null

q() { as_pg psql -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d postgres "$@"; }
timed() { q -c 'CHECKPOINT' -c '\timing on' -c "$1" | awk '/^Time: / { t = $2 } END { print t }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
# install_peer ARCHIVE: builds a peer's source archive (PGXS) and installs
# it into this run's private directory, where the cluster finds it
install_peer() {
    mkdir -p "$WORK/peer"
    tar xzf "$1" -C "$WORK/peer"
    local dir
    dir=$(find "$WORK/peer" -mindepth 1 -maxdepth 1 -type d | head -1)
    make -s -C "$dir" >/dev/null 2>&1
    make -s -C "$dir" install DESTDIR="$WORK/inst" >/dev/null
    chmod -R a+rX "$WORK/inst"
}

# write_section NAME TEXT: TEXT, which starts with <!-- NAME:start --> and
# ends with <!-- NAME:end -->, replaces that section of the report, or is
# appended to it
write_section() {
    if grep -q "<!-- $1:start -->" "$REPORT"; then
        # the section through the environment: awk -v would turn a \t in
        # it (psql's \timing) into a tab
        SECTION=$2 awk -v a="<!-- $1:start -->" -v b="<!-- $1:end -->" \
            '$0 == a { print ENVIRON["SECTION"]; skip = 1 } $0 == b { skip = 0; next } !skip' "$REPORT" >"$REPORT.new" &&
            mv "$REPORT.new" "$REPORT"
    else
        printf '\n%s\n' "$2" >>"$REPORT"
    fi
    echo "== wrote $REPORT"
}
CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
# written_by SCRIPT: the line that says which script wrote a section, when, where
written_by() {
    echo "Written by \`bash bench/$1\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($CPU, $(nproc) cores;" \
         "$(q -c 'SHOW server_version'); fsync on; load average before: $LOAD_AT_START)."
}
