# test/t/021_citus_writers.pl
# suite: citus
#
# Exactly once on a Citus 13 cluster (docs/citus.md): in-flight writers of a
# distributed source, through the coordinator and through a worker node
# (query-from-any-node), are waited for by the run and a writer that
# starts during the run is held off, so that each row is loaded once; then
# the rest that works as on one node: lineage edges, a downstream run by a
# background worker, a pg_cron schedule, run_batched and a lookback.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use CitusCluster;

my ($coord, @workers) = start_citus_cluster('w_', qq{
max_worker_processes = 32
cron.database_name = 'postgres'
});
$coord->append_conf('postgresql.conf', "cron.host = '" . $coord->host . "'\n");
$coord->restart;

sub sql { return $coord->safe_psql('postgres', shift); }

# counts NAME: the counts of the pipeline's last run
sub counts {
    my $name = shift;
    return sql(qq{
        SELECT status || ' read=' || rows_read || ' inserted=' || rows_inserted
               || ' updated=' || rows_updated || ' unchanged=' || rows_unchanged
          FROM pipeline.runs WHERE pipeline_name = '$name' ORDER BY run_id DESC LIMIT 1});
}

my $timer = IPC::Run::timer(180);

# session NODE: an interactive psql on a node; send SESSION, SQL runs SQL
# and returns once psql has read it (not once it has finished)
sub session {
    my $node = shift;
    my %s = (in => '', out => '', err => '');
    $s{h} = IPC::Run::start(['psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres')],
                            '<', \$s{in}, '>', \$s{out}, '2>', \$s{err}, $timer);
    return \%s;
}
sub send_sql {
    my ($s, $sql) = @_;
    $s->{in} .= "$sql\n";
    $s->{h}->pump while length $s->{in};
}
# wait_out SESSION, PATTERN: pumps until the session's output matches
sub wait_out {
    my ($s, $re) = @_;
    $s->{h}->pump until $s->{out} =~ $re || $timer->is_expired;
    return $s->{out} =~ $re;
}

# A distributed change log whose ids the writers choose, so that a row can
# commit late below the high-water mark (what the wait for in-flight writers
# is for), and a distributed target colocated with it.
sql(q{
    CREATE SCHEMA s;
    CREATE TABLE s.w (id bigint NOT NULL, k int NOT NULL, v int NOT NULL);
    SELECT create_distributed_table('s.w', 'k');
    CREATE INDEX ON s.w (id);
    CREATE TABLE s.wt (id bigint, k int PRIMARY KEY, v int NOT NULL);
    SELECT create_distributed_table('s.wt', 'k', colocate_with => 's.w');
    INSERT INTO s.w SELECT g, g, g FROM generate_series(1, 100) g;
    SELECT pipeline.create_pipeline('w', 's.w', 's.wt', unique_key => '{k}', incremental_column => 'id');
    SELECT pipeline.run('w');
});
is(counts('w'), 'succeeded read=100 inserted=100 updated=0 unchanged=0', 'the first run loads the source');

# ---- an in-flight writer through the coordinator: of its rows one (150) is
# below the high-water mark (200) when the run starts, one (201) above; it
# commits after the run started
sql(q{INSERT INTO s.w SELECT g, g, g FROM generate_series(101, 200) g WHERE g <> 150});
my $writer = session($coord);
send_sql($writer, q{BEGIN; INSERT INTO s.w VALUES (150, 150, 150), (201, 201, 201); \echo inserted});
ok(wait_out($writer, qr/inserted/), 'a writer through the coordinator holds an open transaction');
my %run = (out => '', err => '');
my $runner = IPC::Run::start(['psql', '-XAtq', '-d', $coord->connstr('postgres'), '-c', q{SELECT pipeline.run('w')}],
                             '>', \$run{out}, '2>', \$run{err}, $timer);
ok($coord->poll_query_until('postgres', q{
       SELECT count(*) > 0 FROM pg_locks WHERE relation = 's.w'::regclass AND mode = 'ShareLock' AND NOT granted}),
   'the run waits for it');
send_sql($writer, q{COMMIT; \echo committed});
ok(wait_out($writer, qr/committed/), 'the writer commits');
$runner->finish;
is(counts('w'), 'succeeded read=100 inserted=100 updated=0 unchanged=0',
   'the run loads the writer\'s row below the high-water mark with the rest of the window, once');
is(sql(q{SELECT count(*) FROM s.wt WHERE k = 150}), '1', 'the late row is in the target');
sql(q{SELECT pipeline.run('w')});
is(counts('w'), 'succeeded read=1 inserted=1 updated=0 unchanged=0',
   'the next run loads its row above the high-water mark, once');

# ---- the same through a worker node: a writer on worker1 (Citus's
# query-from-any-node) holds an open transaction with a row below the
# high-water mark; a second writer on worker1 starts while the run waits
sql(q{INSERT INTO s.w SELECT g, g, g FROM generate_series(202, 300) g WHERE g <> 250});
my $w1 = session($workers[0]);
send_sql($w1, q{BEGIN; INSERT INTO s.w VALUES (250, 250, 250); \echo inserted});
ok(wait_out($w1, qr/inserted/), 'a writer on worker1 holds an open transaction on the distributed source');
%run = (out => '', err => '');
$runner = IPC::Run::start(['psql', '-XAtq', '-d', $coord->connstr('postgres'), '-c', q{SELECT pipeline.run('w')}],
                          '>', \$run{out}, '2>', \$run{err}, $timer);
ok($workers[0]->poll_query_until('postgres', q{
       SELECT count(*) > 0 FROM pg_locks WHERE relation = 's.w'::regclass AND mode = 'ShareLock' AND NOT granted}),
   'the run waits for it on worker1: its lock on the source is taken on every node with metadata');
my $late = session($workers[0]);
send_sql($late, q{BEGIN; INSERT INTO s.w VALUES (310, 310, 310); COMMIT; \echo committed});
ok($workers[0]->poll_query_until('postgres', q{
       SELECT count(*) > 0 FROM pg_locks WHERE relation = 's.w'::regclass AND mode = 'RowExclusiveLock' AND NOT granted}),
   'a writer that starts on worker1 during the run is held off');
send_sql($w1, q{COMMIT; \echo committed});
ok(wait_out($w1, qr/committed/), 'the first writer commits');
$runner->finish;
is($run{err}, '', 'the run succeeds');
ok(wait_out($late, qr/committed/), 'the held-off writer goes on once the run has committed');
is(counts('w'), 'succeeded read=99 inserted=99 updated=0 unchanged=0',
   'the run loads the row of the writer on worker1 with its window, once');
sql(q{SELECT pipeline.run('w')});
is(counts('w'), 'succeeded read=1 inserted=1 updated=0 unchanged=0', 'the next run loads the held-off row, once');
is(sql(q{SELECT count(*) || ' ' || count(DISTINCT k) FROM s.wt}) . ' '
     . sql(q{SELECT count(*) FROM ((TABLE s.wt EXCEPT ALL TABLE s.w) UNION ALL (TABLE s.w EXCEPT ALL TABLE s.wt)) d}),
   '301 301 0', 'every source row is in the target exactly once');

# ---- a writer of the target on worker2 in flight: the run waits for it on
# worker2 before counting, so its row cannot slip between the counts and
# the load
sql(q{INSERT INTO s.w VALUES (311, 311, 311)});
my $tw = session($workers[1]);
send_sql($tw, q{BEGIN; INSERT INTO s.wt VALUES (NULL, 5000, 5000); \echo inserted});
ok(wait_out($tw, qr/inserted/), 'a writer on worker2 holds an open transaction on the distributed target');
%run = (out => '', err => '');
$runner = IPC::Run::start(['psql', '-XAtq', '-d', $coord->connstr('postgres'), '-c', q{SELECT pipeline.run('w')}],
                          '>', \$run{out}, '2>', \$run{err}, $timer);
ok($workers[1]->poll_query_until('postgres', q{
       SELECT count(*) > 0 FROM pg_locks WHERE relation = 's.wt'::regclass AND mode = 'ShareRowExclusiveLock'
          AND NOT granted}),
   'the run waits for it on worker2: its lock on the target is taken on every node with metadata');
send_sql($tw, q{COMMIT; \echo committed});
ok(wait_out($tw, qr/committed/), 'the target\'s writer commits');
$runner->finish;
is($run{err} . counts('w'), 'succeeded read=1 inserted=1 updated=0 unchanged=0', 'and the run counts exactly');
sql(q{DELETE FROM s.wt WHERE k = 5000});
$_->{h}->finish for ($writer, $w1, $late, $tw);

# ---- why the writers above choose their ids: a sequence is not monotonic
# across the nodes, which registration says
my ($rc, $out, $err) = $coord->psql('postgres', q{
    CREATE TABLE s.seq (id bigserial, k int NOT NULL);
    SELECT create_distributed_table('s.seq', 'k');
    CREATE INDEX ON s.seq (id);
    SELECT pipeline.create_pipeline('seq', 's.seq', 's.seqt', unique_key => '{k}', incremental_column => 'id')});
like($err, qr/NOTICE:  incremental column "id" of Citus table s\.seq is numbered by a sequence/,
     'registration tells that a sequence-numbered incremental column is not monotonic across nodes');
$workers[0]->safe_psql('postgres', q{INSERT INTO s.seq (k) VALUES (1)});
sql(q{INSERT INTO s.seq (k) VALUES (2)});
is(sql(q{SELECT string_agg((id > 2 ^ 48)::text, ' ' ORDER BY k) FROM s.seq}), 'true false',
   'a row written through worker1 is numbered far above the next one through the coordinator');
sql(q{SELECT pipeline.drop_pipeline('seq', drop_target => true)});

# ---- lineage of pipelines over distributed tables, a reference-table
# dimension in a view, and a downstream pipeline run by a background worker
sql(q{
    CREATE TABLE s.dim (k int PRIMARY KEY, label text);
    SELECT create_reference_table('s.dim');
    INSERT INTO s.dim SELECT g, 'k' || g FROM generate_series(1, 400) g;
    CREATE VIEW s.wv AS SELECT t.id, t.k, t.v, d.label FROM s.wt t JOIN s.dim d USING (k);
    SELECT pipeline.create_pipeline('down', 's.wv', 's.down', unique_key => '{k}',
                                    incremental_column => 'id', depends_on => '{w}');
});
is(sql(q{SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition
          WHERE logicalrelid = 's.down'::regclass}), '', 'a view source gives a local target (docs/citus.md)');
is(sql(q{SELECT string_agg(from_relation || ' -> ' || to_relation || ' ' || edge_kind, ', '
                           ORDER BY from_relation, to_relation) FROM pipeline.lineage}),
   's.dim -> s.wv view, s.w -> s.wt pipeline, s.wt -> s.wv view, s.wv -> s.down pipeline',
   'lineage: the edges through distributed and reference tables');
is(sql(q{SELECT pipeline.refresh_lineage()}), '2', 'refresh_lineage recomputes both pipelines');
# the OpenLineage events of a run over distributed tables name them as on one node
my $last_w = sql(q{SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'w'});
is(sql(qq{SELECT e->>'eventType' || ' ' || (e->'inputs'->0->>'name') || ' -> ' || (e->'outputs'->0->>'name') || ' '
                 || coalesce(e->'outputs'->0->'outputFacets'->'outputStatistics'->>'rowCount', '-')
            FROM pipeline.openlineage_events($last_w) AS e ORDER BY e->>'eventTime' DESC LIMIT 1}),
   'COMPLETE postgres.s.w -> postgres.s.wt 1', 'OpenLineage: the run\'s complete event, its distributed input and output, its row count');
is(sql(q{SELECT count(*) FROM pipeline.lineage}), '4', 'and finds the same edges');

sql(q{INSERT INTO s.w VALUES (400, 400, 400)});
my $up = sql(q{SELECT pipeline.run('w')});
ok($coord->poll_query_until('postgres', qq{
       SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline_name = 'down' AND status = 'succeeded'
          AND parent_run_id = $up}),
   'a background worker runs the downstream pipeline after its upstream loaded');
is(counts('down') . ' ' . sql(q{SELECT count(*) FROM ((TABLE s.down EXCEPT TABLE s.wv) UNION ALL (TABLE s.wv EXCEPT TABLE s.down)) d}),
   'succeeded read=303 inserted=303 updated=0 unchanged=0 0',
   'and loads the join of the distributed and reference tables into its local target');
like(sql(q{SELECT string_agg(line, E'\n') FROM pipeline.explain('down') AS line}),
     qr/Citus cannot MERGE between a local and a Citus table.*\nWITH i AS \(INSERT INTO s\.down AS t .* ON CONFLICT \(k\) DO UPDATE SET /s,
     'Citus cannot MERGE from Citus tables into a local one: the load is an upsert');
sql(q{UPDATE s.dim SET label = 'renamed' WHERE k <= 20; INSERT INTO s.w VALUES (401, 20, -20)});
my $up2 = sql(q{SELECT pipeline.run('w')});
ok($coord->poll_query_until('postgres', qq{
       SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline_name = 'down' AND parent_run_id = $up2
          AND status <> 'running'}),
   'the downstream pipeline runs again after the next upstream run');
is(counts('down') . ' ' . sql(q{SELECT count(*) FROM ((TABLE s.down EXCEPT TABLE s.wv) UNION ALL (TABLE s.wv EXCEPT TABLE s.down)) d}),
   'succeeded read=1 inserted=0 updated=1 unchanged=0 38',
   'the next run updates the key whose change it reads (the dimension change reaches the target with its keys\' next change)');

# a lineage column would not be written by that upsert: refused
sql(q{ALTER TABLE s.down ADD COLUMN loaded_by bigint});
($rc, $out, $err) = $coord->psql('postgres', q{\set VERBOSITY verbose
    SELECT pipeline.set_lineage_column('down', 'loaded_by'); SELECT pipeline.run('down')});
like($err, qr/ERROR:  0A000: a lineage column is not supported on source s\.wv, which reads Citus tables/,
     'a lineage column on a pipeline reading Citus tables is refused (0A000)');
sql(q{SELECT pipeline.set_lineage_column('down', NULL)});

# ---- run_batched and a lookback on distributed tables
sql(q{
    CREATE TABLE s.ts (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
    SELECT create_distributed_table('s.ts', 'k', colocate_with => 's.w');
    INSERT INTO s.ts SELECT '2024-01-01'::timestamptz + g * interval '1 minute', g, g FROM generate_series(1, 1000) g;
    SELECT pipeline.create_pipeline('bat', 's.ts', 's.bat', unique_key => '{k}', incremental_column => 'at',
                                    lookback => '10 minutes');
});
sql(q{CALL pipeline.run_batched('bat', 300)});
is(sql(q{SELECT status || ' batches=' || batches || ' read=' || rows_read || ' inserted=' || rows_inserted
          FROM pipeline.runs WHERE pipeline_name = 'bat' ORDER BY run_id DESC LIMIT 1}),
   'succeeded batches=4 read=1000 inserted=1000', 'run_batched: four batches into a distributed target, counted exactly');
is(sql(q{SELECT column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition WHERE logicalrelid = 's.bat'::regclass}),
   'k', 'its created target is distributed on the key');
# a row committed late, 5 minutes below the watermark, and 5 new rows
sql(q{INSERT INTO s.ts VALUES ('2024-01-01'::timestamptz + interval '995 minutes', 1001, 1001);
      INSERT INTO s.ts SELECT '2024-01-01'::timestamptz + g * interval '1 minute', g, g FROM generate_series(1002, 1006) g;
      UPDATE s.ts SET v = -v WHERE k = 998});
sql(q{SELECT pipeline.run('bat')});
is(counts('bat'), 'succeeded read=16 inserted=6 updated=1 unchanged=9',
   'lookback: the last 10 minutes are read again, the late row is loaded, the rest counted unchanged');
is(sql(q{SELECT count(*) FROM ((TABLE s.bat EXCEPT TABLE s.ts) UNION ALL (TABLE s.ts EXCEPT TABLE s.bat)) d}), '0',
   'and the target equals the source');

# ---- a pg_cron schedule on the coordinator: pg_cron lives there only, so
# its CREATE EXTENSION is kept from Citus's propagation to the worker nodes
# (where it is not preloaded)
sql(q{
    SET citus.enable_ddl_propagation = off;
    CREATE EXTENSION pg_cron;
    RESET citus.enable_ddl_propagation;
    CREATE TABLE s.cr (id bigint NOT NULL, k int NOT NULL, v int NOT NULL);
    SELECT create_distributed_table('s.cr', 'k', colocate_with => 's.w');
    INSERT INTO s.cr SELECT g, g, g FROM generate_series(1, 50) g;
    SELECT pipeline.create_pipeline('cron', 's.cr', 's.crt', unique_key => '{k}', incremental_column => 'id',
                                    schedule => '* * * * *');
});
ok($coord->poll_query_until('postgres', q{
       SELECT count(*) = 1 FROM pipeline.runs WHERE pipeline_name = 'cron' AND status = 'succeeded'
          AND triggered_by = 'schedule'}),
   'pg_cron on the coordinator runs the scheduled pipeline');
is(counts('cron') . ' ' . sql(q{SELECT count(*) FROM s.crt}), 'succeeded read=50 inserted=50 updated=0 unchanged=0 50',
   'into its distributed target');

$_->stop for ($coord, @workers);
done_testing();
