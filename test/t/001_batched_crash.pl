# test/t/001_batched_crash.pl
#
# A batched backfill is killed with SIGKILL in the middle of a batch. The
# server restarts; the batches committed before the crash stay, the batch in
# flight is gone with its watermark, and the next run marks the dead run as
# failed and resumes exactly where the last committed batch ended: every
# source row lands in the target exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('batched_crash');
$node->init;
$node->append_conf('postgresql.conf', "max_worker_processes = 16\nrestart_after_crash = on\n");
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    CREATE TABLE s.src (id bigserial PRIMARY KEY, v int NOT NULL);
    INSERT INTO s.src (v) SELECT g FROM generate_series(1, 50) g;
    -- rows past 30 are slow to read, so the run is caught in batch four
    CREATE TABLE s.slow_from (n int);
    INSERT INTO s.slow_from VALUES (30);
    CREATE FUNCTION s.slow(v int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN
        IF v > (SELECT n FROM s.slow_from) THEN PERFORM pg_sleep(0.5); END IF;
        RETURN v;
    END $$;
    CREATE VIEW s.src_view AS SELECT id, s.slow(v) AS v FROM s.src;
    SELECT pipeline.create_pipeline('backfill', 's.src_view', 's.dst',
        unique_key => ARRAY['id'], incremental_column => 'id', batch_rows => 10);
});

my ($out, $err) = ('', '');
my $run = IPC::Run::start(
    [ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
      "CALL pipeline.run_batched('backfill')" ],
    '>', \$out, '2>', \$err);

ok($node->poll_query_until('postgres',
        "SELECT watermark = '30' FROM pipeline.pipelines WHERE name = 'backfill'"),
   'three batches committed before the crash');
my $pid = $node->safe_psql('postgres', q{
    SELECT pid FROM pg_stat_activity WHERE query LIKE 'CALL pipeline.run_batched%'});
ok($pid =~ /^\d+$/, 'found the backend running the batched run');
kill 'KILL', $pid;
$run->finish;

ok($node->poll_query_until('postgres', 'SELECT 1', '1'), 'server restarted after the crash');

is($node->safe_psql('postgres', q{
    SELECT status || ' ' || batches || ' ' || rows_inserted || ' ' || watermark_to
      FROM pipeline.runs WHERE pipeline_name = 'backfill'}),
   'running 3 30 30', 'the dead run shows its committed batches');
is($node->safe_psql('postgres', 'SELECT count(*) || \' \' || max(id) FROM s.dst'),
   '30 30', 'the target holds the committed batches and nothing of the fourth');
is($node->safe_psql('postgres', "SELECT watermark FROM pipeline.pipelines WHERE name = 'backfill'"),
   '30', 'the watermark is that of the last committed batch');

$node->safe_psql('postgres', q{
    UPDATE s.slow_from SET n = 1000;
    CALL pipeline.run_batched('backfill');
});
is($node->safe_psql('postgres', q{
    SELECT string_agg(status || ' ' || coalesce(error_sqlstate, '-') || ' ' || rows_inserted,
                      ', ' ORDER BY run_id)
      FROM pipeline.runs WHERE pipeline_name = 'backfill'}),
   'failed 57P02 30, succeeded - 20',
   'the next run marks the dead one failed and loads only the rest');
is($node->safe_psql('postgres', q{
    SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || sum(v)
      FROM s.dst}),
   '50 50 1275', 'every source row is in the target exactly once');

$node->stop;
done_testing();
