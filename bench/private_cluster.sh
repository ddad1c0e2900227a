# bench/private_cluster.sh: sourced by the load benchmarks (checks.sh,
# masks.sh, typed_loads.sh, scale.sh) with BENCH_NAME and BENCH_PORT set
# (and BENCH_CONF, extra lines of postgresql.conf). Builds this tree, installs
# it into a directory of its own (never into the system's PostgreSQL),
# starts one throwaway cluster from it with the benchmarks' settings, stops
# and removes it on exit, and defines q (psql on it), timed (one statement's
# time after a CHECKPOINT, in a fresh session), median and ratio.
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
# a benchmark's own settings (BENCH_CONF: lines of postgresql.conf)
[ -n "${BENCH_CONF:-}" ] && printf '%s\n' "$BENCH_CONF" >>"$WORK/data/postgresql.conf"
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w start >/dev/null

q() { as_pg psql -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d postgres "$@"; }
timed() { q -c 'CHECKPOINT' -c '\timing on' -c "$1" | awk '/^Time: / { t = $2 } END { print t }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
