# test/t/006_kill9.pl
# suite: kill-9
#
# kill -9 at random points. PP_KILL9_ITERATIONS (default 20) times, while
# pgbench writers keep inserting, updating and deleting in three staging
# tables (test/reliability/kill9_writes.pgbench), SIGKILL one of:
#   batched    the backend of a CALL pipeline.run_batched
#   worker     a background worker running a pipeline
#   postmaster the postmaster itself (then the node is started again)
# at a random moment. After the restart and the recovery of interrupted runs
# by the launcher, the writers are stopped, every pipeline runs once more,
# and each target must equal its plain-SQL reference:
#   m  merge of the change log s.ev   DISTINCT ON (k) latest change, minus
#                                     keys whose latest change is a deletion
#   d  full of a view aggregating m   the view itself (run by a worker,
#                                     triggered by m)
#   f  full of s.dim                  s.dim
#   w  full of a slow view of s.dim   s.dim (run by workers, on trigger)
#   a  keyless append of s.log        s.log: no row lost, none twice
# The watermarks of m and a must be the high-water marks of their sources,
# and no run may be left 'running'. The server log may show the kills
# (signal 9) and nothing else that crashed.
#
# The seed is printed; PP_SEED=<seed> repeats the choices and the delays
# (not the writers' interleaving).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../reliability";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use Time::HiRes qw(usleep time);
use Reliability qw(pick_seed postmaster_pid postmaster_alive crash_lines
  restart_after_kill wait_for);

my $ITERATIONS = $ENV{PP_KILL9_ITERATIONS} // 20;
my $seed = pick_seed('kill -9');

my $node = PostgreSQL::Test::Cluster->new('kill9');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_pipeline'
pipeline.databases = 'postgres'
pipeline.max_workers = 4
pipeline.check_interval = 1
max_worker_processes = 32
restart_after_crash = on
log_min_messages = warning
});
$node->start;

sub sql { return $node->safe_psql('postgres', shift); }

sql(q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    CREATE TABLE s.ev (change_id bigserial PRIMARY KEY, k int NOT NULL, v int NOT NULL,
                       is_deleted boolean NOT NULL DEFAULT false);
    CREATE INDEX ON s.ev (k, change_id);
    CREATE TABLE s.dim (k int PRIMARY KEY, v int NOT NULL);
    CREATE TABLE s.log (id bigserial PRIMARY KEY, v int NOT NULL);
    INSERT INTO s.ev (k, v) SELECT g % 400 + 1, g FROM generate_series(1, 4000) g;
    INSERT INTO s.dim SELECT g, g FROM generate_series(1, 400) g;
    INSERT INTO s.log (v) SELECT g FROM generate_series(1, 2000) g;
    -- a slow transform, so that a worker is caught in the middle of a run
    CREATE FUNCTION s.slow(v int) RETURNS int LANGUAGE sql AS
        $$ SELECT v FROM pg_catalog.pg_sleep(0.003) $$;
    CREATE VIEW s.dim_slow AS SELECT k, s.slow(v) AS v FROM s.dim;

    SELECT pipeline.create_pipeline('m', 's.ev', 's.m', unique_key => '{k}',
        incremental_column => 'change_id', delete_column => 'is_deleted', batch_rows => 40);
    SELECT pipeline.create_pipeline('a', 's.log', 's.a', mode => 'append',
        incremental_column => 'id', batch_rows => 40);
    SELECT pipeline.create_pipeline('f', 's.dim', 's.f', unique_key => '{k}', mode => 'full');
    SELECT pipeline.create_pipeline('w', 's.dim_slow', 's.w', unique_key => '{k}', mode => 'full');
    CREATE VIEW s.m_agg AS SELECT k % 10 AS g, count(*) AS n, sum(v) AS total FROM s.m GROUP BY 1;
    SELECT pipeline.create_pipeline('d', 's.m_agg', 's.d', unique_key => '{g}', mode => 'full');
});

# idle: nothing queued, nothing running, no worker busy
my $IDLE = q{
    SELECT NOT EXISTS (SELECT 1 FROM pipeline.queue)
       AND NOT EXISTS (SELECT 1 FROM pipeline.runs WHERE status = 'running')
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_pipeline worker')};

# drain runs every pipeline once more (m first: it triggers d) and waits
# until the workers are done; returns what went wrong
sub drain {
    my @bad;
    push @bad, 'the runs did not settle after the restart'
      unless $node->poll_query_until('postgres', $IDLE);
    for my $stmt (q{CALL pipeline.run_batched('m')}, q{CALL pipeline.run_batched('a')},
                  q{SELECT pipeline.run('f')}, q{SELECT pipeline.run('w')}) {
        my ($rc, $out, $err) = $node->psql('postgres', $stmt);
        push @bad, "$stmt failed: $err" if $rc != 0;
    }
    push @bad, 'the workers did not settle after the drain'
      unless $node->poll_query_until('postgres', $IDLE);
    my ($rc, $out, $err) = $node->psql('postgres', q{SELECT pipeline.run('d')});
    push @bad, "run of d failed: $err" if $rc != 0;
    return @bad;
}

# check compares every target with its reference; returns the mismatches
my $CHECK = q{
    WITH ref_m AS (
        SELECT k, v FROM (SELECT DISTINCT ON (k) k, v, is_deleted FROM s.ev ORDER BY k, change_id DESC) x
         WHERE NOT is_deleted)
    SELECT 'm differs from DISTINCT ON latest change: ' || count(*) || ' rows'
      FROM ((SELECT k, v FROM s.m EXCEPT ALL SELECT k, v FROM ref_m)
            UNION ALL (SELECT k, v FROM ref_m EXCEPT ALL SELECT k, v FROM s.m)) x HAVING count(*) > 0
    UNION ALL
    SELECT 'm holds deleted rows: ' || count(*) FROM s.m WHERE is_deleted HAVING count(*) > 0
    UNION ALL
    SELECT 'watermark of m is ' || coalesce(w.value, 'NULL') || ', high-water mark ' || (SELECT max(change_id) FROM s.ev)
      FROM pipeline.watermark w JOIN pipeline.pipeline p USING (pipeline_id)
     WHERE p.name = 'm' AND w.value IS DISTINCT FROM (SELECT max(change_id)::text FROM s.ev)
    UNION ALL
    SELECT 'd differs from its view: ' || count(*) || ' rows'
      FROM ((SELECT g, n, total FROM s.d EXCEPT ALL SELECT g, n, total FROM s.m_agg)
            UNION ALL (SELECT g, n, total FROM s.m_agg EXCEPT ALL SELECT g, n, total FROM s.d)) x HAVING count(*) > 0
    UNION ALL
    SELECT 'f differs from s.dim: ' || count(*) || ' rows'
      FROM ((TABLE s.f EXCEPT ALL TABLE s.dim) UNION ALL (TABLE s.dim EXCEPT ALL TABLE s.f)) x HAVING count(*) > 0
    UNION ALL
    SELECT 'w differs from s.dim: ' || count(*) || ' rows'
      FROM ((TABLE s.w EXCEPT ALL TABLE s.dim) UNION ALL (TABLE s.dim EXCEPT ALL TABLE s.w)) x HAVING count(*) > 0
    UNION ALL
    SELECT 'a lost ' || count(*) || ' rows of s.log'
      FROM (SELECT id, v FROM s.log EXCEPT ALL SELECT id, v FROM s.a) x HAVING count(*) > 0
    UNION ALL
    SELECT 'a holds ' || count(*) || ' rows twice or not in s.log'
      FROM (SELECT id, v FROM s.a EXCEPT ALL SELECT id, v FROM s.log) x HAVING count(*) > 0
    UNION ALL
    SELECT 'watermark of a is ' || coalesce(w.value, 'NULL') || ', high-water mark ' || (SELECT max(id) FROM s.log)
      FROM pipeline.watermark w JOIN pipeline.pipeline p USING (pipeline_id)
     WHERE p.name = 'a' AND w.value IS DISTINCT FROM (SELECT max(id)::text FROM s.log)
    UNION ALL
    SELECT 'runs left running: ' || string_agg(pipeline_name || ' #' || run_id, ', ')
      FROM pipeline.runs WHERE status = 'running' HAVING count(*) > 0
    UNION ALL
    SELECT 'a pipeline without its watermark row: ' || string_agg(name, ', ')
      FROM pipeline.pipeline p WHERE NOT EXISTS (SELECT 1 FROM pipeline.watermark w WHERE w.pipeline_id = p.pipeline_id)
    HAVING count(*) > 0};

my @bad = (drain(), grep { $_ ne '' } split /\n/, sql($CHECK));
ok(!@bad, 'before any kill, every target equals its reference') or diag(join("\n", @bad));

my $writes = "$FindBin::Bin/../reliability/kill9_writes.pgbench";
my %kills;

# ready_count counts the times the server said it was ready: one more
# after each crash and restart
sub ready_count {
    open(my $fh, '<', $node->logfile) or return 0;
    my $n = grep { /database system is ready to accept connections/ } <$fh>;
    close $fh;
    return $n;
}

# pid_of returns the pid of a backend matching a pg_stat_activity condition
sub pid_of {
    my ($cond) = @_;
    my ($rc, $out) = $node->psql('postgres',
        "SELECT pid FROM pg_stat_activity WHERE $cond ORDER BY random() LIMIT 1");
    return ($rc == 0 && $out =~ /^(\d+)$/) ? $1 : undef;
}

for my $it (1 .. $ITERATIONS) {
    my $kind = (qw(batched worker postmaster))[ int(rand(3)) ];
    my $delay = 0.05 + rand(1.2);
    my $batched = rand() < 0.7 ? 'm' : 'a';

    my ($wout, $werr) = ('', '');
    my $writers = IPC::Run::start(
        [ 'pgbench', '-n', '-q', '-h', $node->host, '-p', $node->port, '-c', '3', '-T', '120',
          '-f', $writes, 'postgres' ], '>', \$wout, '2>', \$werr);
    usleep(300_000);

    # something to kill: a batched run in a backend over a backlog of some
    # 800 batches of 5 rows (about 2 ms each), runs in workers
    $node->safe_psql('postgres', $batched eq 'm'
        ? q{INSERT INTO s.ev (k, v) SELECT 1 + (random() * 399)::int, g FROM generate_series(1, 4000) g}
        : q{INSERT INTO s.log (v) SELECT g FROM generate_series(1, 4000) g});
    my ($rout, $rerr) = ('', '');
    my $run = IPC::Run::start(
        [ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
          "CALL pipeline.run_batched('$batched', 5)" ], '>', \$rout, '2>', \$rerr);
    $node->psql('postgres', q{SELECT pipeline.trigger('w'); SELECT pipeline.run('m');});
    my $t0 = time();
    wait_for(3, sub { defined pid_of(q{backend_type = 'pg_pipeline worker'}) }) if $kind eq 'worker';
    my $wait = $delay - (time() - $t0);
    usleep($wait * 1e6) if $wait > 0;

    my $victim;
    if ($kind eq 'batched') {
        $victim = pid_of(q{query LIKE 'CALL pipeline.run_batched%' AND state = 'active'});
        $kind = 'worker (the batched run had finished)' unless $victim;
    }
    if (!$victim && $kind ne 'postmaster') {
        $victim = pid_of(q{backend_type = 'pg_pipeline worker'});
        $kind = 'postmaster (no run left to kill)' unless $victim;
    }
    my $what;
    if ($victim) {
        my $ready = ready_count();
        kill 'KILL', $victim;
        $what = "the $kind backend $victim";
        # the server restarts all its processes after a backend dies by a
        # signal; a victim that had just exited by itself causes none
        diag("iteration $it: no restart seen after kill -9 of $what; it had exited")
          unless wait_for(20, sub { ready_count() > $ready });
        ok($node->poll_query_until('postgres', 'SELECT 1', '1'),
           "iteration $it: the server answers after kill -9 of $what");
    } else {
        $what = "the $kind";
        ok(restart_after_kill($node), "iteration $it: the node starts again after kill -9 of the postmaster");
    }
    $kills{ (split / /, $kind)[0] }++;

    $writers->kill_kill;
    $writers->finish;
    $run->kill_kill;
    $run->finish;

    @bad = (drain(), grep { $_ ne '' } split /\n/, $node->safe_psql('postgres', $CHECK));
    ok(!@bad, sprintf('iteration %d: kill -9 of %s after %.2f s; every target equals its reference',
                      $it, $what, $delay)) or diag(join("\n", @bad));
}

diag('kills: ' . join(', ', map { "$_ $kills{$_}" } sort keys %kills));
ok(sql(q{SELECT count(*) FROM pipeline.runs WHERE status = 'failed'}) > 0,
   'the kills left failed runs behind, recorded as such');
my @crashes = crash_lines($node, 1);
is(scalar(@crashes), 0, 'the server log shows the kills and no other crash')
  or diag(join("\n", @crashes[0 .. ($#crashes < 20 ? $#crashes : 19)]));

$node->stop;
done_testing();
