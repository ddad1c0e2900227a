# test/t/004_pg_cron.pl
#
# A scheduled pipeline really runs through pg_cron: its job appears in
# cron.job under the pipeline's name, runs as the pipeline's owner, leaves a
# succeeded row in cron.job_run_details, and loads the target. Renaming the
# pipeline keeps the job in step; dropping it removes the job.
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
