# test/t/004_pg_cron.pl
#
# A scheduled pipeline really runs through pg_cron: its job appears in
# cron.job under the pipeline's name, runs as the pipeline's owner, leaves a
# succeeded row in cron.job_run_details, and loads the target. Renaming the
# pipeline keeps the job in step; dropping it removes the job.
#
# In pg_cron's other mode a background worker runs a job's command, all its
# statements in one transaction (docs/parallel.md): a parallel run alone in
# a job builds its partitions' indexes after their rows; one sent with
# other statements loads serially, so that a later statement that writes
# the target does not wait for ever for the run's prepared parts.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
# pg_cron's default mode: jobs connect through libpq (here the node's socket)
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.host = '@{[ $node->host ]}'
max_worker_processes = 32
});
$node->start;

sub sql { return $node->safe_psql('postgres', shift); }

my $bgw = PostgreSQL::Test::Cluster->new('cron_bgw');
$bgw->init;
$bgw->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 32
max_prepared_transactions = 8
});
$bgw->start;
$bgw->safe_psql('postgres', q{
    CREATE EXTENSION pg_cron;
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    CREATE TABLE s.src (id bigint PRIMARY KEY, v int NOT NULL);
    INSERT INTO s.src SELECT g, g FROM generate_series(1, 1000) g;
    CREATE TABLE s.alone (id bigint PRIMARY KEY, v int NOT NULL) PARTITION BY HASH (id);
    CREATE TABLE s.alone_0 PARTITION OF s.alone FOR VALUES WITH (MODULUS 2, REMAINDER 0);
    CREATE TABLE s.alone_1 PARTITION OF s.alone FOR VALUES WITH (MODULUS 2, REMAINDER 1);
    CREATE TABLE s.shared (id bigint PRIMARY KEY, v int NOT NULL) PARTITION BY HASH (id);
    CREATE TABLE s.shared_0 PARTITION OF s.shared FOR VALUES WITH (MODULUS 2, REMAINDER 0);
    CREATE TABLE s.shared_1 PARTITION OF s.shared FOR VALUES WITH (MODULUS 2, REMAINDER 1);
    CREATE VIEW s.index_files AS
    SELECT c.relname, pg_relation_filenode(i.indexrelid) AS file
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
     WHERE c.relname IN ('alone_0', 'alone_1', 'shared_0', 'shared_1');
    CREATE TABLE s.files_before AS SELECT * FROM s.index_files;
    SELECT pipeline.create_pipeline(p, 's.src', t, unique_key => '{id}', incremental_column => 'id',
                                    partition_column => 'id', create_target => false,
                                    parallel_workers => 2, schedule => s)
      FROM (VALUES ('alone', 's.alone', '* * * * *'), ('shared', 's.shared', NULL)) AS v(p, t, s);
    SELECT cron.schedule('shared', '* * * * *',
                         $$SET lock_timeout = '10s'; SELECT pipeline.run('shared'); UPDATE s.shared SET v = -v WHERE id = 1$$);
});

sql(q{
    CREATE EXTENSION pg_cron;
    CREATE EXTENSION pg_pipeline;
    CREATE ROLE alice LOGIN;
    GRANT USAGE ON SCHEMA cron TO alice;
    CREATE SCHEMA s AUTHORIZATION alice;
});
$node->safe_psql('postgres', q{
    SET ROLE alice;
    CREATE TABLE s.src (id bigserial PRIMARY KEY, v int NOT NULL);
    INSERT INTO s.src (v) SELECT g FROM generate_series(1, 5) g;
    SELECT pipeline.create_pipeline('every minute', 's.src', 's.dst', unique_key => '{id}',
                                    incremental_column => 'id', schedule => '* * * * *');
});

is(sql(q{SELECT jobname || ' | ' || schedule || ' | ' || username || ' | ' || command FROM cron.job}),
   q{pipeline: every minute | * * * * * | alice | CALL pipeline.scheduled_run('every minute')},
   'one pg_cron job per pipeline, named after it, running as its owner');

ok($node->poll_query_until('postgres', q{
        SELECT EXISTS (SELECT 1 FROM cron.job_run_details WHERE status = 'succeeded')
           AND (SELECT count(*) FROM s.dst) = 5}, 't'),
   'the job ran and loaded the target');
is(sql(q{SELECT status || ' ' || triggered_by || ' ' || rows_inserted FROM pipeline.runs ORDER BY run_id LIMIT 1}),
   'succeeded schedule 5', 'the run is recorded as scheduled');

ok($bgw->poll_query_until('postgres', q{
        SELECT count(*) = 2 FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')}, 't'),
   'both background-worker jobs ended');
is($bgw->safe_psql('postgres', q{
        SELECT string_agg(j.jobname || ' ' || d.status, ', ' ORDER BY j.jobname)
          FROM cron.job_run_details d JOIN cron.job j USING (jobid)}),
   'pipeline: alone succeeded, shared succeeded',
   'a run alone in a job, and one sent with a write of its target after it, both commit');
is($bgw->safe_psql('postgres', q{
        SELECT string_agg(pipeline_name || ' ' || status || ' ' || rows_inserted, ', ' ORDER BY pipeline_name)
          FROM pipeline.runs}),
   'alone succeeded 1000, shared succeeded 1000', 'both runs are recorded with their counts');
is($bgw->safe_psql('postgres', q{SELECT count(*) || ' ' || min(v) FROM s.shared}), '1000 -1',
   'the statement after the run wrote its target');
is($bgw->safe_psql('postgres', q{
        SELECT string_agg(a.relname || ' ' || (a.file <> b.file), ', ' ORDER BY a.relname)
          FROM s.index_files a JOIN s.files_before b USING (relname)}),
   'alone_0 true, alone_1 true, shared_0 true, shared_1 true',
   'the parts of the run alone in its job built its partitions\' indexes after the rows; the serial run built its own');
$bgw->stop;

$node->safe_psql('postgres', q{
    SET ROLE alice;
    SELECT pipeline.alter_pipeline('every minute', new_name => 'hourly', schedule => '0 * * * *');
});
is(sql(q{SELECT string_agg(jobname || ' | ' || schedule, ', ') FROM cron.job}),
   'pipeline: hourly | 0 * * * *', 'renaming and rescheduling keeps the job in step');

$node->safe_psql('postgres', q{SET ROLE alice; SELECT pipeline.unschedule('hourly');});
is(sql(q{SELECT count(*) FROM cron.job}), '0', 'unschedule removes the job');
$node->safe_psql('postgres', q{SET ROLE alice; SELECT pipeline.schedule('hourly', '30 2 * * *');});
is(sql(q{SELECT jobname || ' | ' || schedule FROM cron.job}), 'pipeline: hourly | 30 2 * * *',
   'schedule adds it back');
$node->safe_psql('postgres', q{SET ROLE alice; SELECT pipeline.drop_pipeline('hourly');});
is(sql(q{SELECT count(*) FROM cron.job}), '0', 'dropping the pipeline removes its job');

$node->stop;
done_testing();
