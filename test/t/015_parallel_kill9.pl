# test/t/015_parallel_kill9.pl
# suite: kill-9
#
# kill -9 during a parallel run (docs/parallel.md). A pipeline with
# parallel_workers => 2 loads a target partitioned by list into four
# partitions (two parts, two partitions each). The test holds advisory lock
# 7428 and sets pipeline.parallel_pause in the running session, so that the
# last part of the run stops at one of two points:
#   before_prepare          the other part is prepared, the decision
#                           (the leader's commit) not taken;
#   before_commit_prepared  the decision committed, this part still prepared;
# then SIGKILLs either that part worker (the postmaster restarts every
# process) or the postmaster itself (the node is started again). After the
# restart, the launcher's pass must leave no prepared transaction; the
# target and the watermark must be all or nothing (before the decision: the
# run's rows absent and the watermark where it was; after it: all of them
# and the watermark moved); the target must equal a plain-SQL reference at
# its watermark; and the next run must load exactly what is left. A fifth
# case pauses before the PREPARE and lets the run go on: it succeeds, and
# nothing is left prepared; a sixth cancels the leader there: the run is
# recorded as failed (57014), every part rolls back, nothing is left
# prepared. In a database no launcher serves, the next run of the pipeline
# commits a part a crash left prepared after the decision. A run by a run worker (pipeline.trigger) is
# decided by its worker's commit the same way. The server log may show the
# kills and nothing else that crashed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../reliability";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Reliability qw(postmaster_pid postmaster_alive crash_lines restart_after_kill wait_for);

my $node = PostgreSQL::Test::Cluster->new('parallel_kill9');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_pipeline'
pipeline.databases = 'postgres'
pipeline.check_interval = 1
max_worker_processes = 32
max_prepared_transactions = 8
restart_after_crash = on
log_min_messages = warning
});
$node->start;

sub sql { return $node->safe_psql('postgres', shift); }

sql(q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    CREATE TABLE s.src (seq bigserial, region text NOT NULL, id int NOT NULL, v int NOT NULL);
    CREATE TABLE s.dst (seq bigint, region text NOT NULL, id int NOT NULL, v int NOT NULL,
                        PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE s.dst_a PARTITION OF s.dst FOR VALUES IN ('a');
    CREATE TABLE s.dst_b PARTITION OF s.dst FOR VALUES IN ('b');
    CREATE TABLE s.dst_c PARTITION OF s.dst FOR VALUES IN ('c');
    CREATE TABLE s.dst_d PARTITION OF s.dst FOR VALUES IN ('d');
    SELECT pipeline.create_pipeline('p', 's.src', 's.dst', unique_key => '{region,id}',
                                    incremental_column => 'seq', partition_column => 'region',
                                    create_target => false, parallel_workers => 2);
});

my $batch = 0;
# add_batch: 200 rows over every region, half of them new keys, half updates
sub add_batch {
    $batch++;
    sql(qq{INSERT INTO s.src (region, id, v)
           SELECT (ARRAY['a', 'b', 'c', 'd'])[1 + g % 4], (g * 7 + $batch * 50) % 300, $batch
             FROM generate_series(1, 200) AS g});
}
# watermark: the pipeline's, as text ('' when none)
sub watermark { return sql(q{SELECT coalesce(watermark, '') FROM pipeline.pipelines WHERE name = 'p'}); }
# differences: rows of the target not in the reference at mark, and the other way
sub differences {
    my ($mark) = @_;
    return sql(qq{
        WITH ref AS (SELECT DISTINCT ON (region, id) seq, region, id, v FROM s.src
                      WHERE seq <= coalesce(nullif('$mark', '')::bigint, 0)
                      ORDER BY region, id, seq DESC)
        SELECT count(*) FROM ((SELECT * FROM s.dst EXCEPT ALL SELECT * FROM ref)
                              UNION ALL (SELECT * FROM ref EXCEPT ALL SELECT * FROM s.dst)) d});
}
# wait_paused: the last part waits for the advisory lock
sub wait_paused {
    return $node->poll_query_until('postgres', q{
        SELECT count(*) > 0 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
         WHERE a.backend_type = 'pg_pipeline part' AND l.locktype = 'advisory' AND NOT l.granted});
}
sub prepared { return sql(q{SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%'}); }

add_batch();
sql(q{SELECT pipeline.run('p')});
is(prepared(), 0, 'a parallel run leaves nothing prepared');
is(differences(watermark()), 0, 'the first parallel run loads the reference');

for my $case (['before_prepare', 'part'], ['before_prepare', 'server'],
              ['before_commit_prepared', 'part'], ['before_commit_prepared', 'server']) {
    my ($pause, $kill) = @$case;
    my $name = "$pause, kill -9 of the $kill";
    add_batch();
    my $before = watermark();
    my $high = sql(q{SELECT max(seq) FROM s.src});
    my $locker = $node->background_psql('postgres');
    $locker->query_safe('SELECT pg_advisory_lock(7428)');
    my $runner = $node->background_psql('postgres', on_error_stop => 0);
    $runner->query_until(qr/go/, "SET pipeline.parallel_pause = '$pause';\n\\echo go\nSELECT pipeline.run('p');\n");
    ok(wait_paused(), "$name: the last part stops at $pause");
    if ($pause eq 'before_prepare') {
        is(prepared(), 1, "$name: one part is prepared, the decision not taken");
    } else {
        is(sql(q{SELECT status FROM pipeline.runs WHERE pipeline_name = 'p' ORDER BY run_id DESC LIMIT 1}),
           'succeeded', "$name: the decision is committed");
        ok(prepared() >= 1, "$name: the paused part is still prepared");
    }
    if ($kill eq 'part') {
        my $pid = sql(q{SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
                         WHERE a.backend_type = 'pg_pipeline part' AND l.locktype = 'advisory'
                           AND NOT l.granted LIMIT 1});
        kill 'KILL', $pid;
        # the postmaster reaps it and restarts every process: wait for that, then for connections
        ok(wait_for(60, sub { !kill(0, $pid) }), "$name: the part worker is gone");
        ok($node->poll_query_until('postgres', 'SELECT 1', '1'), "$name: the server accepts connections again");
    } else {
        ok(restart_after_kill($node), "$name: the node starts again");
    }
    eval { $runner->quit; };
    eval { $locker->quit; };
    ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 0 FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%'}),
       "$name: the launcher leaves no part prepared");
    my $after = watermark();
    if ($pause eq 'before_prepare') {
        is($after, $before, "$name: the watermark did not move");
    } else {
        is($after, $high, "$name: the watermark moved to the high-water mark");
    }
    is(differences($after), 0, "$name: the target holds exactly the rows up to its watermark");
    sql(q{SELECT pipeline.run('p')});
    is(watermark(), $high, "$name: the next run reaches the high-water mark");
    is(differences($high), 0, "$name: the next run loads exactly what was left");
    is(prepared(), 0, "$name: and leaves nothing prepared");
}

# paused, then let go: the run goes on and succeeds
add_batch();
my $locker = $node->background_psql('postgres');
$locker->query_safe('SELECT pg_advisory_lock(7428)');
my $runner = $node->background_psql('postgres');
$runner->query_until(qr/go/, "SET pipeline.parallel_pause = 'before_prepare';\n\\echo go\nSELECT pipeline.run('p');\n");
ok(wait_paused(), 'paused before the PREPARE');
$locker->query_safe('SELECT pg_advisory_unlock(7428)');
$runner->quit;
$locker->quit;
is(differences(watermark()), 0, 'let go, the run loads the reference');
is(watermark(), sql(q{SELECT max(seq) FROM s.src}), 'and reaches the high-water mark');
is(prepared(), 0, 'and leaves nothing prepared');
is(sql(q{SELECT count(*) FROM pipeline.runs WHERE pipeline_name = 'p' AND status = 'running'}), 0,
   'no run is left running');

# paused, then cancelled: every part rolls back, the failure is recorded
add_batch();
{
    my $before = watermark();
    my $locker = $node->background_psql('postgres');
    $locker->query_safe('SELECT pg_advisory_lock(7428)');
    my $runner = $node->background_psql('postgres', on_error_stop => 0);
    $runner->query_until(qr/go/, "SET pipeline.parallel_pause = 'before_prepare';\n\\echo go\nSELECT pipeline.run('p');\n");
    ok(wait_paused(), 'paused before the PREPARE, again');
    is(sql(q{SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND query LIKE 'SELECT pipeline.run(%'
                AND pid <> pg_backend_pid()}), 1, 'the leader is cancelled');
    ok($node->poll_query_until('postgres', q{
        SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_pipeline part'}),
       'cancelled, the part workers end');
    $runner->quit;
    $locker->quit;
    is(sql(q{SELECT status || ' ' || error_sqlstate FROM pipeline.runs WHERE pipeline_name = 'p'
              ORDER BY run_id DESC LIMIT 1}), 'failed 57014', 'the cancelled run is recorded as failed');
    is(prepared(), 0, 'and leaves nothing prepared');
    is(watermark(), $before, 'and the watermark where it was');
    is(differences($before), 0, 'and the target as it was');
}

# a run worker's run (pipeline.trigger): its commit decides as pipeline.run's does
add_batch();
sql(q{SELECT pipeline.trigger('p')});
ok($node->poll_query_until('postgres', q{
    SELECT watermark = (SELECT max(seq)::text FROM s.src) FROM pipeline.pipelines WHERE name = 'p'}),
   'a run worker makes the run');
is(sql(q{SELECT status FROM pipeline.runs WHERE pipeline_name = 'p' ORDER BY run_id DESC LIMIT 1}),
   'succeeded', 'recorded as succeeded');
is(differences(watermark()), 0, 'the worker\'s run loads the reference');
is(prepared(), 0, 'and leaves nothing prepared');

# a database no launcher serves: the next run of the pipeline finishes what
# a crash left prepared, as the catalog decided
$node->safe_psql('postgres', 'CREATE DATABASE other');
sub osql { return $node->safe_psql('other', shift); }
osql(q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    CREATE TABLE s.src (seq bigserial, region text NOT NULL, id int NOT NULL, v int NOT NULL);
    CREATE TABLE s.dst (seq bigint, region text NOT NULL, id int NOT NULL, v int NOT NULL,
                        PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE s.dst_a PARTITION OF s.dst FOR VALUES IN ('a');
    CREATE TABLE s.dst_b PARTITION OF s.dst FOR VALUES IN ('b');
    SELECT pipeline.create_pipeline('p', 's.src', 's.dst', unique_key => '{region,id}',
                                    incremental_column => 'seq', partition_column => 'region',
                                    create_target => false, parallel_workers => 2);
    INSERT INTO s.src (region, id, v) SELECT (ARRAY['a', 'b'])[1 + g % 2], g, 1 FROM generate_series(1, 100) g;
});
{
    my $locker = $node->background_psql('other');
    $locker->query_safe('SELECT pg_advisory_lock(7428)');
    my $runner = $node->background_psql('other', on_error_stop => 0);
    $runner->query_until(qr/go/, "SET pipeline.parallel_pause = 'before_commit_prepared';\n\\echo go\nSELECT pipeline.run('p');\n");
    ok($node->poll_query_until('other', q{
        SELECT count(*) > 0 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
         WHERE a.backend_type = 'pg_pipeline part' AND l.locktype = 'advisory' AND NOT l.granted}),
       'no launcher: the last part stops with the decision committed');
    ok(restart_after_kill($node), 'no launcher: the node starts again after kill -9');
    eval { $runner->quit; };
    eval { $locker->quit; };
    is(osql(q{SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%'}), 1,
       'no launcher: the part is still prepared after the restart');
    # the part built its partition's index after the rows: until it is
    # finished, it holds that index ACCESS EXCLUSIVE, and readers wait
    my ($rc, $out, $err) = $node->psql('other', q{SET lock_timeout = '200ms'; SELECT count(*) FROM s.dst});
    like($err, qr/lock timeout/, 'no launcher: a reader of the target waits for the part');
    is(osql(q{SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
               WHERE l.pid IS NULL AND l.mode = 'AccessExclusiveLock' AND c.relkind = 'i'
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())}), 1,
       'no launcher: the prepared part holds the index it built');
    osql(q{INSERT INTO s.src (region, id, v) VALUES ('a', 1000, 2), ('b', 1001, 2)});
    osql(q{SELECT pipeline.run('p')});
    is(osql(q{SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'pg_pipeline:%'}), 0,
       'no launcher: the next run committed it');
    is(osql(q{SELECT count(*) || ' ' || sum(v) FROM s.dst}), '102 104',
       'no launcher: the target holds every row once');
}

my @crashes = crash_lines($node, 1);
is(scalar(@crashes), 0, 'the server log shows the kills and nothing else that crashed')
  or diag(join("\n", @crashes));

$node->stop;
done_testing();
