# test/t/008_soak.pl
# suite: soak
#
# Soak: for PP_SOAK_SECONDS (default 120; bench/soak.sh runs it for as long
# as asked), pgbench writers (test/reliability/soak_writes.pgbench, at
# PP_SOAK_RATE transactions per second, 0 for as fast as they go) insert,
# re-deliver, flag and purge changes in a staging change log, while a
# three-stage chain keeps up by itself:
#
#   staging.ev --soak_clean (merge, by key)--> core.cur
#              --view core.by_bucket, soak_agg (full)--> mart.buckets
#
# soak_clean runs from its pg_cron schedule (every minute) and from
# background workers when the loader nudges it (pipeline.trigger, once a
# second, test/reliability/soak_kick.pgbench); soak_agg runs in a worker
# whenever soak_clean has landed rows (an inferred dependency). The chain is
# owned by a role that is not a superuser.
#
# After the writers stop, the chain is drained (every stage run once more)
# and each stage must equal its plain-SQL reference exactly: core.cur the
# latest change per key of staging.ev without the deleted keys, mart.buckets
# the aggregate of that reference. No run may have failed or be left
# 'running', the watermark must be the staging high-water mark, pg_cron and
# the workers must both have run the chain, and the server must not have
# crashed.
#
# It reports (as diagnostics, and as key=value lines in PP_SOAK_REPORT when
# set, which bench/soak.sh turns into docs/benchmarks.md): writes per
# second, rows loaded per second, and the lag from a change's write in
# staging to the end of the first soak_agg run that started after the
# soak_clean run that loaded it (p50, p95, p99, max).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../reliability";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use Time::HiRes qw(time);
use Reliability qw(postmaster_pid postmaster_alive crash_lines);

my $SECONDS = $ENV{PP_SOAK_SECONDS} // 120;
my $RATE = $ENV{PP_SOAK_RATE} // 200;
my $CLIENTS = $ENV{PP_SOAK_CLIENTS} // 4;
my $KICK = $ENV{PP_SOAK_KICK_RATE} // 1;

my $node = PostgreSQL::Test::Cluster->new('soak');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron,pg_pipeline'
cron.database_name = 'postgres'
cron.host = '@{[ $node->host ]}'
pipeline.databases = 'postgres'
pipeline.max_workers = 4
pipeline.check_interval = 1
max_worker_processes = 32
log_min_messages = warning
});
$node->start;
my $pm_pid = postmaster_pid($node);

sub sql { return $node->safe_psql('postgres', shift); }

sql(q{
    CREATE EXTENSION pg_cron;
    CREATE EXTENSION pg_pipeline;
    CREATE ROLE etl LOGIN;
    GRANT USAGE ON SCHEMA cron TO etl;
    CREATE SCHEMA staging AUTHORIZATION etl;
    CREATE SCHEMA core AUTHORIZATION etl;
    CREATE SCHEMA mart AUTHORIZATION etl;
});
$node->safe_psql('postgres', q{
    SET ROLE etl;
    CREATE TABLE staging.ev (change_id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL,
                             is_deleted boolean NOT NULL DEFAULT false,
                             written_at timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE INDEX ON staging.ev (k, change_id);
    INSERT INTO staging.ev (k, v) SELECT g, g FROM generate_series(1, 5000) g;
    SELECT pipeline.create_pipeline('soak_clean', 'staging.ev', 'core.cur', unique_key => '{k}',
        incremental_column => 'change_id', delete_column => 'is_deleted', schedule => '* * * * *');
    CREATE VIEW core.by_bucket AS
        SELECT k % 50 AS bucket, count(*) AS n, sum(v) AS total, max(change_id) AS last_change
          FROM core.cur GROUP BY 1;
    SELECT pipeline.create_pipeline('soak_agg', 'core.by_bucket', 'mart.buckets',
        unique_key => '{bucket}', mode => 'full');
    SELECT pipeline.run('soak_clean');
});

my $IDLE = q{
    SELECT NOT EXISTS (SELECT 1 FROM pipeline.queue)
       AND NOT EXISTS (SELECT 1 FROM pipeline.runs WHERE status = 'running')
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_pipeline worker')};
ok($node->poll_query_until('postgres', $IDLE), 'the chain settles after the first load');
my $start_ts = sql(q{SELECT clock_timestamp()});
my $first_run = sql(q{SELECT coalesce(max(run_id), 0) FROM pipeline.runs});

diag("soak: ${SECONDS} s, $CLIENTS writers at " . ($RATE ? "$RATE tx/s" : 'full speed')
     . ", nudge $KICK/s");
my @conn = ('-h', $node->host, '-p', $node->port, '-U', 'etl');
my ($wout, $werr, $kout, $kerr) = ('', '', '', '');
my $started = time();
my $writers = IPC::Run::start(
    [ 'pgbench', '-n', @conn, '-c', $CLIENTS, '-j', 1, '-T', $SECONDS, ($RATE ? ('-R', $RATE) : ()),
      '-f', "$FindBin::Bin/../reliability/soak_writes.pgbench", 'postgres' ],
    '>', \$wout, '2>', \$werr);
my $kicker = IPC::Run::start(
    [ 'pgbench', '-n', @conn, '-c', 1, '-T', $SECONDS, '-R', $KICK,
      '-f', "$FindBin::Bin/../reliability/soak_kick.pgbench", 'postgres' ],
    '>', \$kout, '2>', \$kerr);
$writers->finish;
$kicker->finish;
my $write_seconds = time() - $started;
my ($tx) = $wout =~ /number of transactions actually processed: (\d+)/;
my ($failed_tx) = $wout =~ /number of failed transactions: (\d+)/;
ok(defined $tx && $tx > 0, 'the writers committed ' . ($tx // 0) . ' transactions')
  or diag("pgbench: $wout\n$werr");
is($failed_tx // 0, 0, 'no writer transaction failed');
my $end_ts = sql(q{SELECT clock_timestamp()});

# drain: let the workers finish, run each stage once more
ok($node->poll_query_until('postgres', $IDLE), 'the chain settles after the writers stop');
sql(q{SET ROLE etl; SELECT pipeline.run('soak_clean');});
ok($node->poll_query_until('postgres', $IDLE), 'the second stage follows the drain of the first');
sql(q{SET ROLE etl; SELECT pipeline.run('soak_agg');});

my $REF = q{
    WITH ref AS (SELECT k, v, change_id, written_at
                   FROM (SELECT DISTINCT ON (k) * FROM staging.ev ORDER BY k, change_id DESC) x
                  WHERE NOT is_deleted)};
is(sql($REF . q{
    SELECT count(*) FROM ((SELECT k, v, change_id, written_at FROM core.cur EXCEPT ALL TABLE ref)
                          UNION ALL (TABLE ref EXCEPT ALL SELECT k, v, change_id, written_at FROM core.cur)) d}),
   '0', 'stage 2 (core.cur) equals the latest change per key of staging, deleted keys left out');
is(sql(q{SELECT count(*) FROM core.cur WHERE is_deleted}), '0', 'stage 2 holds no deleted row');
is(sql($REF . q{, agg AS (SELECT k % 50 AS bucket, count(*) AS n, sum(v) AS total, max(change_id) AS last_change
                          FROM ref GROUP BY 1)
    SELECT count(*) FROM ((TABLE mart.buckets EXCEPT ALL TABLE agg)
                          UNION ALL (TABLE agg EXCEPT ALL TABLE mart.buckets)) d}),
   '0', 'stage 3 (mart.buckets) equals the aggregate of the reference');
is(sql(q{SELECT w.value = (SELECT max(change_id)::text FROM staging.ev)
           FROM pipeline.watermark w JOIN pipeline.pipeline p USING (pipeline_id) WHERE p.name = 'soak_clean'}),
   't', 'the watermark of stage 2 is the high-water mark of staging');
is(sql(q{SELECT count(*) FROM pipeline.runs WHERE status = 'running'}), '0', "no run is left 'running'");
is(sql(qq{SELECT coalesce(string_agg(pipeline_name || ' #' || run_id || ' ' || error_sqlstate || ': ' || error_message, E'\\n'), '')
            FROM pipeline.runs WHERE status = 'failed' AND run_id > $first_run}),
   '', 'no run failed');
# a scheduled run that met a worker's run of the same pipeline is recorded
# as skipped: it still shows that pg_cron ran it
my ($by_cron, $by_trigger, $by_upstream) = split /\|/, sql(qq{
    SELECT count(*) FILTER (WHERE triggered_by = 'schedule'), count(*) FILTER (WHERE triggered_by = 'trigger'),
           count(*) FILTER (WHERE triggered_by = 'upstream')
      FROM pipeline.runs WHERE status IN ('succeeded', 'skipped') AND run_id > $first_run});
ok($by_cron > 0 || $SECONDS < 90, "pg_cron ran the first stage ($by_cron runs)");
ok($by_trigger > 0 && $by_upstream > 0,
   "workers ran the first stage when nudged ($by_trigger runs) and the second when it landed ($by_upstream runs)");
ok(postmaster_alive($pm_pid) && (postmaster_pid($node) // 0) == $pm_pid,
   'the postmaster that was started is still running');
my @crashes = crash_lines($node, 0);
is(scalar(@crashes), 0, 'the server log shows no crash')
  or diag(join("\n", @crashes[0 .. ($#crashes < 20 ? $#crashes : 19)]));

# ---------------------------------------------------------------- figures
my ($loaded, $read, $clean_runs, $skipped) = split /\|/, sql(qq{
    SELECT sum(rows_inserted + rows_updated + rows_deleted), sum(rows_read),
           count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'skipped')
      FROM pipeline.runs
     WHERE pipeline_name = 'soak_clean' AND run_id > $first_run AND started_at <= '$end_ts'});
# lag: a change written at t is loaded by the first soak_clean run whose
# watermark reached its change id, and visible in the last stage when the
# first soak_agg run that started after that run finished ends
my $lag = sql(qq{
    CREATE TEMP TABLE clean_runs AS
        SELECT int8range(coalesce(lag(watermark_to::bigint) OVER w, 0), watermark_to::bigint, '(]') AS ids,
               finished_at
          FROM pipeline.runs
         WHERE pipeline_name = 'soak_clean' AND status = 'succeeded' AND watermark_to IS NOT NULL
        WINDOW w AS (ORDER BY finished_at);
    CREATE INDEX ON clean_runs USING gist (ids);
    WITH visible AS (
        SELECT e.written_at,
               (SELECT min(a.finished_at) FROM pipeline.runs a
                 WHERE a.pipeline_name = 'soak_agg' AND a.status = 'succeeded'
                   AND a.started_at > c.finished_at) AS seen_at
          FROM staging.ev e JOIN clean_runs c ON c.ids @> e.change_id
         WHERE e.written_at >= '$start_ts' AND e.written_at < '$end_ts')
    SELECT count(*) || '|' ||
           concat_ws('|', VARIADIC (SELECT array_agg(round(x::numeric, 1))
                                      FROM unnest(percentile_cont(ARRAY[0.5, 0.95, 0.99, 1])
                                                  WITHIN GROUP (ORDER BY extract(epoch FROM seen_at - written_at) * 1000)) x))
      FROM visible WHERE seen_at IS NOT NULL});
my ($lag_n, $p50, $p95, $p99, $pmax) = split /\|/, $lag;
my %fig = (
    seconds => sprintf('%.0f', $write_seconds), clients => $CLIENTS, rate => $RATE, kick => $KICK,
    transactions => $tx // 0, writes_per_s => sprintf('%.1f', ($tx // 0) / $write_seconds),
    rows_loaded => $loaded // 0, rows_loaded_per_s => sprintf('%.1f', ($loaded // 0) / $write_seconds),
    rows_read => $read // 0, clean_runs => $clean_runs, skipped_runs => $skipped,
    cron_runs => $by_cron, trigger_runs => $by_trigger, upstream_runs => $by_upstream,
    lag_rows => $lag_n, lag_p50_ms => $p50 // '', lag_p95_ms => $p95 // '', lag_p99_ms => $p99 // '',
    lag_max_ms => $pmax // '',
    staging_rows => sql(q{SELECT count(*) FROM staging.ev}), keys => sql(q{SELECT count(*) FROM core.cur}));
diag(join(' ', map { "$_=$fig{$_}" } sort keys %fig));
ok($lag_n > 0, "lag measured over $lag_n changes: p50 ${\($p50 // '?')} ms, p95 ${\($p95 // '?')} ms, p99 ${\($p99 // '?')} ms");
if ($ENV{PP_SOAK_REPORT}) {
    open(my $fh, '>', $ENV{PP_SOAK_REPORT}) or die "cannot write $ENV{PP_SOAK_REPORT}: $!";
    print $fh map { "$_=$fig{$_}\n" } sort keys %fig;
    close $fh;
}

$node->stop;
done_testing();
