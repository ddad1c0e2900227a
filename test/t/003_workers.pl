# test/t/003_workers.pl
#
# Background workers run pipelines by themselves: after one upstream run
# commits new rows, a chain and a diamond of pipelines run in dependency
# order (the diamond's join once); a transient failure is retried with
# backoff and then succeeds; a permanent failure is not retried; a run past
# its timeout is cancelled and recorded; SIGTERM to a worker is recorded
# cleanly; kill -9 of a worker in the middle of a run restarts the server,
# and the recovered run leaves the target exactly right; the launcher comes
# back by itself after it is terminated. The owner of a pipeline, not a
# superuser, cancels its run in a worker (another role may not), and a NOTIFY
# payload never carries a run's error message.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_pipeline'
pipeline.databases = 'postgres'
pipeline.max_workers = 4
pipeline.check_interval = 1
max_worker_processes = 32
restart_after_crash = on
});
$node->start;

sub sql { return $node->safe_psql('postgres', shift); }

# wait_idle waits until nothing is queued or running
sub wait_idle {
    return $node->poll_query_until('postgres', q{
        SELECT NOT EXISTS (SELECT 1 FROM pipeline.queue)
           AND NOT EXISTS (SELECT 1 FROM pipeline.runs WHERE status = 'running')});
}

sql(q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    -- a chain: raw -> a -> b (through a view) -> c
    CREATE TABLE s.raw (id bigserial PRIMARY KEY, v int NOT NULL);
    SELECT pipeline.create_pipeline('a', 's.raw', 's.a', unique_key => '{id}', incremental_column => 'id');
    CREATE VIEW s.a_doubled AS SELECT id, v * 2 AS v FROM s.a;
    SELECT pipeline.create_pipeline('b', 's.a_doubled', 's.b', unique_key => '{id}', mode => 'full');
    SELECT pipeline.create_pipeline('c', 's.b', 's.c', unique_key => '{id}', mode => 'full');
    -- a diamond: top -> left, right -> join
    CREATE TABLE s.events (id bigserial PRIMARY KEY, k int NOT NULL, amount int NOT NULL);
    SELECT pipeline.create_pipeline('top', 's.events', 's.top', unique_key => '{id}', incremental_column => 'id');
    CREATE VIEW s.left_v AS SELECT k, sum(amount)::bigint AS total FROM s.top GROUP BY k;
    CREATE VIEW s.right_v AS SELECT k, count(*)::bigint AS n FROM s.top GROUP BY k;
    SELECT pipeline.create_pipeline('left', 's.left_v', 's.lft', unique_key => '{k}', mode => 'full');
    SELECT pipeline.create_pipeline('right', 's.right_v', 's.rgt', unique_key => '{k}', mode => 'full');
    CREATE VIEW s.join_v AS SELECT l.k, l.total, r.n FROM s.lft l JOIN s.rgt r USING (k);
    SELECT pipeline.create_pipeline('join', 's.join_v', 's.jn', unique_key => '{k}', mode => 'full');
});

is(sql(q{SELECT string_agg(p.name || '<-' || u.name || ':' || d.kind, ', ' ORDER BY p.name, u.name)
        FROM pipeline.dependencies d
        JOIN pipeline.pipelines p ON p.id = d.pipeline_id
        JOIN pipeline.pipelines u ON u.id = d.upstream_id}),
   'b<-a:inferred, c<-b:inferred, join<-left:inferred, join<-right:inferred, left<-top:inferred, right<-top:inferred',
   'dependencies are inferred through views');

# chain
sql(q{INSERT INTO s.raw (v) SELECT g FROM generate_series(1, 10) g});
my $a_run = sql(q{SELECT pipeline.run('a')});
ok(wait_idle(), 'the chain settles');
is(sql(q{SELECT count(*) || ' ' || sum(v) FROM s.c}), '10 110', 'the end of the chain is loaded');
is(sql(qq{SELECT string_agg(pipeline_name || ':' || depth || ':' || status || ':' || triggered_by, ', '
          ORDER BY depth) FROM pipeline.run_tree($a_run)}),
   'a:0:succeeded:manual, b:1:succeeded:upstream, c:2:succeeded:upstream',
   'run_tree shows the chain, each run naming its parent');

# diamond
sql(q{INSERT INTO s.events (k, amount) SELECT g % 3, g FROM generate_series(1, 30) g});
my $top_run = sql(q{SELECT pipeline.run('top')});
ok(wait_idle(), 'the diamond settles');
is(sql(q{SELECT count(*) FROM pipeline.runs WHERE pipeline_name = 'join'}), '1',
   'the join pipeline of the diamond ran once');
is(sql(q{SELECT string_agg(k || '=' || total || '/' || n, ' ' ORDER BY k) FROM s.jn}),
   '0=165/10 1=145/10 2=155/10', 'the join holds both branches');
is(sql(qq{SELECT string_agg(pipeline_name || ':' || depth, ', ' ORDER BY depth, pipeline_name)
          FROM pipeline.run_tree($top_run)}),
   'top:0, left:1, right:1, join:2', 'the join ran after both branches, under one of them');

# a transient failure, retried with backoff until it succeeds
sql(q{
    CREATE SEQUENCE s.attempts;
    CREATE FUNCTION s.flaky(v int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN
        IF nextval('s.attempts') <= 2 THEN
            RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
        END IF;
        RETURN v;
    END $$;
    CREATE TABLE s.flaky_src (id int PRIMARY KEY, v int);
    INSERT INTO s.flaky_src VALUES (1, 1), (2, 2);
    CREATE VIEW s.flaky_v AS SELECT id, s.flaky(v) AS v FROM s.flaky_src;
    SELECT pipeline.create_pipeline('flaky', 's.flaky_v', 's.flaky_dst', unique_key => '{id}',
                                    mode => 'full', max_retries => 3, retry_delay => '200 milliseconds');
    SELECT pipeline.trigger('flaky');
});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline_name = 'flaky' AND status = 'succeeded'}),
   'the flaky pipeline succeeds in the end');
is(sql(q{SELECT string_agg(attempt || ':' || status || ':' || coalesce(error_sqlstate, '-') || ':' || triggered_by,
                         ', ' ORDER BY run_id) FROM pipeline.runs WHERE pipeline_name = 'flaky'}),
   '1:failed:40001:trigger, 2:failed:40001:retry, 3:succeeded:-:retry',
   'each attempt is its own numbered run record');
ok(sql(q{SELECT (r3.started_at - r2.finished_at) > (r2.started_at - r1.finished_at)
         FROM (SELECT started_at, finished_at FROM pipeline.runs WHERE pipeline_name = 'flaky' AND attempt = 1) r1,
              (SELECT started_at, finished_at FROM pipeline.runs WHERE pipeline_name = 'flaky' AND attempt = 2) r2,
              (SELECT started_at, finished_at FROM pipeline.runs WHERE pipeline_name = 'flaky' AND attempt = 3) r3}) eq 't'
   || 1, 'retries back off');
is(sql(q{SELECT count(*) FROM s.flaky_dst}), '2', 'the retried run loaded the target');

# a permanent failure is not retried, and raises an alert
sql(q{
    CREATE TABLE s.bad_src (id int PRIMARY KEY, v int);
    INSERT INTO s.bad_src VALUES (1, 0);
    CREATE VIEW s.bad_v AS SELECT id, 1 / v AS v FROM s.bad_src;
    SELECT pipeline.create_pipeline('bad', 's.bad_v', 's.bad_dst', unique_key => '{id}',
                                    mode => 'full', max_retries => 5, retry_delay => '100 milliseconds');
    SELECT pipeline.trigger('bad');
});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline_name = 'bad' AND status = 'failed'}),
   'the bad pipeline fails');
sleep 2;
is(sql(q{SELECT count(*) || ' ' || max(error_sqlstate) FROM pipeline.runs WHERE pipeline_name = 'bad'}),
   '1 22012', 'a permanent failure is not retried');
is(sql(q{SELECT count(*) FROM pipeline.alerts WHERE pipeline_name = 'bad' AND kind = 'run_failed'}), '1',
   'the failure raised an alert');

# a run past its timeout is cancelled and recorded
sql(q{
    CREATE TABLE s.slow_src (id int PRIMARY KEY, v int);
    INSERT INTO s.slow_src VALUES (1, 1);
    CREATE TABLE s.slowness (seconds float8);
    INSERT INTO s.slowness VALUES (30);
    CREATE FUNCTION s.slow(v int) RETURNS int LANGUAGE sql AS
        $$ SELECT v FROM (SELECT pg_sleep((SELECT seconds FROM s.slowness))) x $$;
    CREATE VIEW s.slow_v AS SELECT id, s.slow(v) AS v FROM s.slow_src;
    SELECT pipeline.create_pipeline('slow', 's.slow_v', 's.slow_dst', unique_key => '{id}',
                                    mode => 'full', timeout => '1 second');
    SELECT pipeline.trigger('slow');
});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline_name = 'slow' AND status = 'failed'}),
   'the slow run is stopped');
is(sql(q{SELECT error_sqlstate || ' ' || error_message FROM pipeline.runs WHERE pipeline_name = 'slow'}),
   '57014 run exceeded its timeout of 00:00:01', 'the timeout is recorded');

# SIGTERM to a worker in the middle of a run
sql(q{SELECT pipeline.alter_pipeline('slow', timeout => '0'); SELECT pipeline.trigger('slow');});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_pipeline worker'}),
   'a worker runs the slow pipeline');
sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_pipeline worker'});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 2 FROM pipeline.runs WHERE pipeline_name = 'slow' AND status = 'failed'}),
   'the terminated run is recorded');
is(sql(q{SELECT error_sqlstate FROM pipeline.runs WHERE pipeline_name = 'slow' ORDER BY run_id DESC LIMIT 1}),
   '57P01', 'as terminated by an administrator');

# pipeline.cancel stops the run in progress; a cancelled run is not retried
sql(q{SELECT pipeline.alter_pipeline('slow', max_retries => 2, retry_delay => '100 milliseconds');
      SELECT pipeline.trigger('slow');});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_pipeline worker'}),
   'a worker runs the slow pipeline, which may retry');
is(sql(q{SELECT pipeline.cancel('slow')}), 't', 'cancel finds the run');
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 3 FROM pipeline.runs WHERE pipeline_name = 'slow' AND status = 'failed'}),
   'the cancelled run is recorded as failed');
sleep 2;
is(sql(q{SELECT count(*) || ' ' || string_agg(DISTINCT error_sqlstate, ',')
           FROM pipeline.runs WHERE pipeline_name = 'slow' AND run_id > (
                SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'slow' AND error_sqlstate = '57P01')}),
   '1 57014', 'and not retried');
sql(q{SELECT pipeline.alter_pipeline('slow', max_retries => 0)});

# the owner, not a superuser, cancels a run that a worker (connected as the
# bootstrap superuser) executes; another role may not, and cancels nothing
sql(q{
    CREATE ROLE w_owner;
    CREATE ROLE w_other;
    CREATE SCHEMA w AUTHORIZATION w_owner;
    GRANT USAGE ON SCHEMA w TO w_other;
    SET ROLE w_owner;
    CREATE TABLE w.src (id int PRIMARY KEY, v int);
    INSERT INTO w.src VALUES (1, 1);
    CREATE FUNCTION w.slow(v int) RETURNS int LANGUAGE sql AS $$ SELECT v FROM (SELECT pg_sleep(60)) x $$;
    CREATE VIEW w.slow_v AS SELECT id, w.slow(v) AS v FROM w.src;
    SELECT pipeline.create_pipeline('w_slow', 'w.slow_v', 'w.slow_dst', unique_key => '{id}', mode => 'full');
    SELECT pipeline.trigger('w_slow');
});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline_name = 'w_slow' AND status = 'running'}),
   'a worker runs the pipeline of w_owner');
my ($cancel_out, $cancel_err) = ('', '');
$node->psql('postgres', q{SET ROLE w_other; SELECT pipeline.cancel('w_slow')},
            stdout => \$cancel_out, stderr => \$cancel_err);
like($cancel_err, qr/permission denied to cancel pipeline "w_slow"/, 'another role may not cancel it (42501)');
is(sql(q{SELECT status FROM pipeline.runs WHERE pipeline_name = 'w_slow'}), 'running',
   'and the run goes on');
is(sql(q{SET ROLE w_owner; SELECT pipeline.cancel('w_slow')}), 't',
   'its owner cancels the run in the worker');
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline_name = 'w_slow' AND status = 'failed'}),
   'the cancelled run ends');
is(sql(q{SELECT error_sqlstate FROM pipeline.runs WHERE pipeline_name = 'w_slow'}), '57014',
   'recorded as failed with 57014');

# NOTIFY payloads carry identifiers and SQLSTATEs, never a run's message,
# which can quote source values (any role may LISTEN)
my ($notify_out, $notify_err) = ('', '');
my $notify_listener = IPC::Run::start(
    [ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
      '-c', 'LISTEN pipeline_alerts', '-c', 'SELECT pg_sleep(4)' ],
    '>', \$notify_out, '2>', \$notify_err);
sleep 1;
sql(q{
    SET ROLE w_owner;
    CREATE TABLE w.codes (id int PRIMARY KEY, code text);
    INSERT INTO w.codes VALUES (1, 'SSN-123');
    CREATE VIEW w.codes_v AS SELECT id, code::int AS code FROM w.codes;
    SELECT pipeline.create_pipeline('w_codes', 'w.codes_v', 'w.codes_dst', unique_key => '{id}', mode => 'full');
});
$node->psql('postgres', q{SET ROLE w_owner; SELECT pipeline.run('w_codes')});
$notify_listener->finish;
like(sql(q{SELECT message FROM pipeline.alerts WHERE pipeline_name = 'w_codes' AND kind = 'run_failed'}),
     qr/invalid input syntax for type integer: "SSN-123"/, 'the failed run raised an alert quoting the value');
like($notify_out, qr/"pipeline" : "w_codes", "kind" : "run_failed", "observed" : "22P02"/,
     'the NOTIFY payload names the pipeline, the kind and the SQLSTATE');
unlike($notify_out, qr/SSN|invalid input/, 'and not the message');

# retries run out: an alert says so
sql(q{
    CREATE FUNCTION s.locked(v int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'lock not available' USING ERRCODE = '55P03'; END $$;
    CREATE VIEW s.locked_v AS SELECT id, s.locked(v) AS v FROM s.flaky_src;
    SELECT pipeline.create_pipeline('locked', 's.locked_v', 's.locked_dst', unique_key => '{id}',
                                    mode => 'full', max_retries => 1, retry_delay => '100 milliseconds');
    SELECT pipeline.trigger('locked');
});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pipeline.alerts WHERE pipeline_name = 'locked' AND kind = 'retries_exhausted'}),
   'exhausted retries raise an alert');
is(sql(q{SELECT string_agg(attempt || ':' || error_sqlstate, ', ' ORDER BY run_id)
           FROM pipeline.runs WHERE pipeline_name = 'locked'}),
   '1:55P03, 2:55P03', 'after the first attempt and its one retry');

# kill -9 of a worker in the middle of a run: the server restarts, the run is
# marked failed and queued again, and the target ends exactly right
sql(q{SELECT pipeline.trigger('slow')});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_pipeline worker'}),
   'a worker runs the slow pipeline again');
my $wpid = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_pipeline worker'});
sql(q{UPDATE s.slowness SET seconds = 0});
kill 'KILL', $wpid;
ok($node->poll_query_until('postgres', q{
        SELECT EXISTS (SELECT 1 FROM pipeline.runs WHERE pipeline_name = 'slow' AND error_sqlstate = '57P02')
           AND EXISTS (SELECT 1 FROM pipeline.runs WHERE pipeline_name = 'slow' AND status = 'succeeded'
                          AND triggered_by = 'recovery')}),
   'after the restart the interrupted run is failed and run again');
is(sql(q{SELECT count(*) || ' ' || sum(v) FROM s.slow_dst}), '1 1', 'the target is exactly right');

is(sql(q{SELECT passes > 0 AND workers_started > 0 FROM pipeline.launcher_status()}), 't',
   'launcher_status reports passes and started workers');

# the launcher comes back by itself
my $lpid = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_pipeline launcher'});
sql(qq{SELECT pg_terminate_backend($lpid)});
ok($node->poll_query_until('postgres', qq{
        SELECT count(*) = 1 FROM pg_stat_activity
         WHERE backend_type = 'pg_pipeline launcher' AND pid <> $lpid}),
   'the launcher restarts');
sql(q{INSERT INTO s.raw (v) VALUES (100)});
sql(q{SELECT pipeline.run('a')});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 11 FROM s.c}),
   'and runs downstream pipelines again');

# freshness: a pipeline whose data has not changed for longer than its limit
# raises one alert, sent with NOTIFY on channel pipeline_alerts as JSON
my ($listen_out, $listen_err) = ('', '');
my $listener = IPC::Run::start(
    [ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
      '-c', 'LISTEN pipeline_alerts', '-c', 'SELECT pg_sleep(6)' ],
    '>', \$listen_out, '2>', \$listen_err);
sleep 1;
sql(q{
    CREATE TABLE s.stale_src (id int PRIMARY KEY, v int);
    SELECT pipeline.create_pipeline('stale', 's.stale_src', 's.stale_dst', unique_key => '{id}',
                                    mode => 'full', freshness => '1 second');
});
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pipeline.alerts WHERE pipeline_name = 'stale' AND kind = 'freshness'}),
   'a freshness breach raises an alert');
$listener->finish;
like($listen_out, qr/Asynchronous notification "pipeline_alerts" with payload "\{"alert_id" : \d+, "pipeline" : "stale", "kind" : "freshness"/,
     'and is sent with NOTIFY as JSON');
sleep 2;
is(sql(q{SELECT count(*) FROM pipeline.alerts WHERE pipeline_name = 'stale' AND kind = 'freshness'}), '1',
   'once per breach');
sql(q{SELECT pipeline.alter_pipeline('stale', mute_freshness => true)});
ok($node->poll_query_until('postgres',
        q{SELECT resolved_at IS NOT NULL FROM pipeline.alerts WHERE pipeline_name = 'stale' AND kind = 'freshness'}),
   'muting the limit resolves the breach');

# retention: old run history is pruned by the launcher, in bounded batches
sql(q{
    INSERT INTO pipeline.run_history (run_id, pipeline_id, pipeline_name, status, started_at, finished_at)
    SELECT -g, 0, 'ancient', 'succeeded', now() - interval '2 days', now() - interval '2 days'
      FROM generate_series(1, 2500) g;
    ALTER SYSTEM SET pipeline.history_retention = '1d';
    ALTER SYSTEM SET pipeline.prune_batch = 1000;
    SELECT pg_reload_conf();
});
ok($node->poll_query_until('postgres',
        q{SELECT NOT EXISTS (SELECT 1 FROM pipeline.runs WHERE pipeline_name = 'ancient')}),
   'run history older than pipeline.history_retention is pruned');
ok(sql(q{SELECT count(*) > 0 FROM pipeline.runs WHERE pipeline_name = 'a'}) eq 't',
   'recent history stays');

$node->stop;
done_testing();
