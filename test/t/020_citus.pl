# test/t/020_citus.pl
# suite: citus
#
# pg_pipeline on a Citus 13 cluster on this machine (docs/citus.md): a
# coordinator (shared_preload_libraries = 'citus,pg_pipeline') and two
# worker nodes ('citus'), three PostgreSQL::Test::Cluster instances that
# reach each other over the Unix socket directory they share. scripts/test.sh
# builds Citus first (../shared/citus/install-citus.sh) and fails this suite
# when it cannot.
#
# Each pipeline's target is compared with a plain-SQL reference computed
# from its source, and each run's counts in pipeline.runs with the numbers
# the test data was built to produce.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $coord = PostgreSQL::Test::Cluster->new('coordinator');
my @workers = map { PostgreSQL::Test::Cluster->new("worker$_") } (1, 2);

for my $node ($coord, @workers) {
    $node->init;
    my $libs = $node == $coord ? 'citus,pg_pipeline' : 'citus';
    $node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$libs'
max_prepared_transactions = 20
citus.node_conninfo = 'sslmode=disable'
log_min_messages = warning
});
    $node->append_conf('postgresql.conf', "pipeline.databases = 'postgres'\n")
      if $node == $coord;
    $node->start;
    $node->safe_psql('postgres', 'CREATE EXTENSION citus');
}

sub sql { return $coord->safe_psql('postgres', shift); }

# The nodes are named by the socket directory and port they listen on.
sql(sprintf(q{SELECT citus_set_coordinator_host('%s', %d)}, $coord->host, $coord->port));
sql(sprintf(q{SELECT citus_add_node('%s', %d)}, $_->host, $_->port)) for @workers;
is(sql(q{SELECT count(*) FROM citus_get_active_worker_nodes()}), '2',
   'the coordinator sees two active worker nodes');

# Citus propagates CREATE EXTENSION to every worker node: the extension's
# catalog exists there too, and stays empty (pipelines live on the
# coordinator).
sql('CREATE EXTENSION pg_pipeline');
for my $w (@workers) {
    is($w->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_pipeline'}),
       sql(q{SELECT extversion FROM pg_extension WHERE extname = 'pg_pipeline'}),
       'Citus propagates CREATE EXTENSION pg_pipeline to worker ' . $w->name);
}

# counts NAME returns the counts of the pipeline's last run, as text
sub counts {
    my $name = shift;
    return sql(qq{
        SELECT status || ' read=' || rows_read || ' rejected=' || rows_rejected
               || ' inserted=' || rows_inserted || ' updated=' || rows_updated
               || ' deleted=' || rows_deleted || ' unchanged=' || rows_unchanged
          FROM pipeline.runs WHERE pipeline_name = '$name' ORDER BY run_id DESC LIMIT 1});
}

# differs A B counts the rows of query A not in B and of B not in A
sub differs {
    my ($a, $b) = @_;
    return sql(qq{SELECT count(*) FROM ((($a) EXCEPT ALL ($b)) UNION ALL (($b) EXCEPT ALL ($a))) x});
}

my ($rc, $out, $err);

# ---- merge: a change log into a target, both distributed on the key, colocated
sql(q{
    CREATE SCHEMA s;
    CREATE TABLE s.ev (change_id bigserial, k int NOT NULL, v int NOT NULL,
                       is_deleted boolean NOT NULL DEFAULT false);
    SELECT create_distributed_table('s.ev', 'k');
    CREATE TABLE s.m (change_id bigint, k int PRIMARY KEY, v int NOT NULL,
                      is_deleted boolean NOT NULL DEFAULT false);
    SELECT create_distributed_table('s.m', 'k', colocate_with => 's.ev');
    INSERT INTO s.ev (k, v) SELECT g % 200 + 1, g FROM generate_series(1, 1000) g;
    SELECT pipeline.create_pipeline('m', 's.ev', 's.m', unique_key => '{k}',
        incremental_column => 'change_id', delete_column => 'is_deleted');
});
my $REF_M = q{SELECT k, v FROM (SELECT DISTINCT ON (k) k, v, is_deleted FROM s.ev
                                ORDER BY k, change_id DESC) x WHERE NOT is_deleted};

sql(q{SELECT pipeline.run('m')});
is(counts('m'), 'succeeded read=1000 rejected=0 inserted=200 updated=0 deleted=0 unchanged=0',
   'merge, first run: 1000 changes of 200 keys, all inserted');
is(differs('SELECT k, v FROM s.m', $REF_M), '0', 'merge, first run: the target is the latest change per key');

# 50 keys changed twice (the later change wins), 10 sent again unchanged,
# 10 deleted, 30 new, 5 deletions of keys the target never had
sql(q{
    INSERT INTO s.ev (k, v) SELECT k, -k FROM generate_series(1, 50) k;
    INSERT INTO s.ev (k, v) SELECT k, 10000 + k FROM generate_series(1, 50) k;
    INSERT INTO s.ev (k, v) SELECT k, v FROM s.m WHERE k BETWEEN 51 AND 60;
    INSERT INTO s.ev (k, v, is_deleted) SELECT k, 0, true FROM generate_series(61, 70) k;
    INSERT INTO s.ev (k, v) SELECT k, k FROM generate_series(201, 230) k;
    INSERT INTO s.ev (k, v, is_deleted) SELECT k, 0, true FROM generate_series(231, 235) k;
});
sql(q{SELECT pipeline.run('m')});
is(counts('m'), 'succeeded read=155 rejected=0 inserted=30 updated=50 deleted=10 unchanged=15',
   'merge, second run: exact counts across the nodes');
is(differs('SELECT k, v FROM s.m', $REF_M), '0', 'merge, second run: the target equals the reference');
is(sql(q{SELECT w.value = (SELECT max(change_id)::text FROM s.ev)
           FROM pipeline.watermark w JOIN pipeline.pipeline p USING (pipeline_id) WHERE p.name = 'm'}),
   't', 'merge: the watermark is the high-water mark of the source');

my $idle_run = sql(q{SELECT pipeline.run('m')});
is(sql(qq{SELECT count(*) FROM pipeline.runs WHERE run_id = $idle_run}) . ' '
     . sql(q{SELECT last_run_id || ' ' || last_run_status || ' ' || idle_runs FROM pipeline.status WHERE name = 'm'}),
   "0 $idle_run succeeded 1",
   'merge, nothing new: counted on the pipeline (status), no run record (docs/exactly-once.md)');

# ---- append: a keyless log, and a keyed append of the change log
sql(q{
    CREATE TABLE s.log (id bigserial, k int NOT NULL, v int NOT NULL);
    SELECT create_distributed_table('s.log', 'k', colocate_with => 's.ev');
    CREATE TABLE s.a (id bigint, k int NOT NULL, v int NOT NULL);
    SELECT create_distributed_table('s.a', 'k', colocate_with => 's.ev');
    INSERT INTO s.log (k, v) SELECT g % 97, g FROM generate_series(1, 500) g;
    SELECT pipeline.create_pipeline('a', 's.log', 's.a', mode => 'append', incremental_column => 'id');
    CREATE TABLE s.ap (change_id bigint, k int PRIMARY KEY, v int NOT NULL, is_deleted boolean);
    SELECT create_distributed_table('s.ap', 'k', colocate_with => 's.ev');
    SELECT pipeline.create_pipeline('ap', 's.ev', 's.ap', mode => 'append', unique_key => '{k}',
        incremental_column => 'change_id');
});
sql(q{SELECT pipeline.run('a')});
is(counts('a'), 'succeeded read=500 rejected=0 inserted=500 updated=0 deleted=0 unchanged=0',
   'keyless append, first run: every row inserted');
sql(q{INSERT INTO s.log (k, v) SELECT g % 97, g FROM generate_series(501, 600) g});
sql(q{SELECT pipeline.run('a')});
is(counts('a'), 'succeeded read=100 rejected=0 inserted=100 updated=0 deleted=0 unchanged=0',
   'keyless append, second run: only the new rows');
is(differs('SELECT id, k, v FROM s.a', 'SELECT id, k, v FROM s.log'), '0',
   'keyless append: the target holds every source row once');

sql(q{SELECT pipeline.run('ap')});
is(counts('ap'), 'succeeded read=1155 rejected=0 inserted=235 updated=0 deleted=0 unchanged=0',
   'keyed append, first run: one row per key, the latest change');
my $wm1 = sql(q{SELECT max(change_id) FROM s.ev});
sql(q{INSERT INTO s.ev (k, v) SELECT k, 7 * k FROM generate_series(1, 5) k;
      INSERT INTO s.ev (k, v) SELECT k, 7 * k FROM generate_series(236, 240) k});
sql(q{SELECT pipeline.run('ap')});
is(counts('ap'), 'succeeded read=10 rejected=0 inserted=5 updated=0 deleted=0 unchanged=5',
   'keyed append, second run: new keys inserted, known keys left alone');
is(differs('SELECT k, v FROM s.ap', qq{
        (SELECT DISTINCT ON (k) k, v FROM s.ev WHERE change_id <= $wm1 ORDER BY k, change_id DESC)
        UNION ALL SELECT k, 7 * k FROM generate_series(236, 240) k}), '0',
   'keyed append: the target keeps the first version of each key it loaded');

# ---- full: a view joining a distributed table with a reference-table dimension
sql(q{
    CREATE TABLE s.cat (cat_id int PRIMARY KEY, label text NOT NULL);
    SELECT create_reference_table('s.cat');
    CREATE TABLE s.items (k int PRIMARY KEY, cat_id int NOT NULL, price int NOT NULL);
    SELECT create_distributed_table('s.items', 'k', colocate_with => 's.ev');
    CREATE VIEW s.items_v AS SELECT i.k, c.label, i.price FROM s.items i JOIN s.cat c USING (cat_id);
    CREATE TABLE s.f (k int PRIMARY KEY, label text, price int);
    SELECT create_distributed_table('s.f', 'k', colocate_with => 's.ev');
    INSERT INTO s.cat SELECT g, 'cat ' || g FROM generate_series(1, 5) g;
    INSERT INTO s.items SELECT g, g % 5 + 1, 10 * g FROM generate_series(1, 100) g;
    SELECT pipeline.create_pipeline('f', 's.items_v', 's.f', unique_key => '{k}', mode => 'full');
});
sql(q{SELECT pipeline.run('f')});
is(counts('f'), 'succeeded read=100 rejected=0 inserted=100 updated=0 deleted=0 unchanged=0',
   'full through a reference-table dimension, first run');
# a dimension change reaches 20 rows, 10 keys vanish, 5 are new
sql(q{
    UPDATE s.cat SET label = 'renamed' WHERE cat_id = 1;
    DELETE FROM s.items WHERE k > 90;
    INSERT INTO s.items SELECT g, 2, 10 * g FROM generate_series(101, 105) g;
});
sql(q{SELECT pipeline.run('f')});
is(counts('f'), 'succeeded read=95 rejected=0 inserted=5 updated=18 deleted=10 unchanged=72',
   'full, second run: exact counts of a dimension change, vanished and new keys');
is(differs('SELECT k, label, price FROM s.f', 'SELECT k, label, price FROM s.items_v'), '0',
   'full: the target equals its view');

# ---- create_target over a Citus source: a distributed target, colocated
# with a distributed source on its distribution column
# dist NAME: the target's distribution column and whether it is colocated with s.ev
sub dist {
    my ($t, $with) = @_;
    return sql(qq{
        SELECT column_to_column_name(t.logicalrelid, t.partkey) || ' ' || (t.colocationid = s.colocationid)
          FROM pg_dist_partition t, pg_dist_partition s
         WHERE t.logicalrelid = '$t'::regclass AND s.logicalrelid = '$with'::regclass});
}
sql(q{SELECT pipeline.create_pipeline('ct', 's.ev', 's.ct', unique_key => '{k}',
        incremental_column => 'change_id', delete_column => 'is_deleted')});
is(dist('s.ct', 's.ev'), 'k true', 'create_target over a distributed source: distributed on k, colocated with it');
sql(q{SELECT pipeline.run('ct')});
is(counts('ct') . ' ' . differs('SELECT k, v FROM s.ct', $REF_M),
   'succeeded read=1165 rejected=0 inserted=225 updated=0 deleted=0 unchanged=15 0',
   'and the first run loads it exactly');
sql(q{
    CREATE TABLE s.ord (id bigserial, cust int NOT NULL, k int NOT NULL, amount int);
    SELECT create_distributed_table('s.ord', 'cust', colocate_with => 's.ev');
    INSERT INTO s.ord (cust, k, amount) SELECT g % 7, g, g FROM generate_series(1, 100) g;
});
($rc, $out, $err) = $coord->psql('postgres', q{\set VERBOSITY verbose
    SELECT pipeline.create_pipeline('ord', 's.ord', 's.ord_t', unique_key => '{k}', incremental_column => 'id')});
like($err, qr/ERROR:  22023: distribution column "cust" of target s\.ord_t is not a column of the unique key\nDETAIL:  Citus requires the primary key of a distributed table to include its distribution column; pipeline "ord" has unique key \(k\)\.\nHINT:  Pass a column of the unique key as distribution_column, or include the source's distribution column in the unique key\./,
     'a source distributed on a column outside the key: refused (22023), the hint names distribution_column');
is(sql(q{SELECT count(*) FROM pg_class WHERE relname = 'ord_t'}), '0', 'and no target is left behind');
sql(q{SELECT pipeline.create_pipeline('ord', 's.ord', 's.ord_t', unique_key => '{k}', incremental_column => 'id',
        distribution_column => 'k')});
is(dist('s.ord_t', 's.ev') . ' ' . sql(q{SELECT pipeline.config_of('ord')->>'distribution_column'}), 'k true k',
   'distribution_column names the column: kept in the config');
sql(q{SELECT pipeline.create_pipeline('ord2', 's.ord', 's.ord_t2', unique_key => '{cust, k}', incremental_column => 'id')});
is(dist('s.ord_t2', 's.ord'), 'cust true', 'a key holding the source distribution column: distributed on it, colocated');
sql(q{SELECT pipeline.run('ord')});
sql(q{SELECT pipeline.run('ord2')});
is(counts('ord') . ' / ' . counts('ord2') . ' ' . differs('SELECT id, cust, k, amount FROM s.ord_t', 'TABLE s.ord')
     . differs('SELECT id, cust, k, amount FROM s.ord_t2', 'TABLE s.ord'),
   'succeeded read=100 rejected=0 inserted=100 updated=0 deleted=0 unchanged=0 / '
   . 'succeeded read=100 rejected=0 inserted=100 updated=0 deleted=0 unchanged=0 00',
   'both load exactly (the one not colocated on the join through Citus repartitioning)');
sql(q{SELECT pipeline.create_pipeline('cref', 's.cat', 's.cref', unique_key => '{cat_id}')});
is(sql(q{SELECT column_to_column_name(logicalrelid, partkey) || ' ' || partmethod::text FROM pg_dist_partition
          WHERE logicalrelid = 's.cref'::regclass}), 'cat_id h',
   'a reference-table source: the target is distributed on the key (Citus loads no reference table with MERGE)');
sql(q{SELECT pipeline.run('cref')});
is(counts('cref') . ' ' . differs('TABLE s.cref', 'TABLE s.cat'),
   'succeeded read=5 rejected=0 inserted=5 updated=0 deleted=0 unchanged=0 0', 'and loads exactly');

# ---- a local staging table into a distributed target: Citus refuses the
# MERGE, so the window is loaded as a DELETE of the keys flagged deleted and
# an INSERT ... SELECT ... ON CONFLICT of the others (docs/citus.md)
sql(q{
    CREATE TABLE s.stage (change_id bigserial, k int NOT NULL, v int NOT NULL,
                          is_deleted boolean NOT NULL DEFAULT false);
    CREATE TABLE s.m2 (change_id bigint, k int PRIMARY KEY, v int NOT NULL,
                       is_deleted boolean NOT NULL DEFAULT false);
    SELECT create_distributed_table('s.m2', 'k', colocate_with => 's.ev');
    INSERT INTO s.stage (k, v) SELECT g % 200 + 1, g FROM generate_series(1, 1000) g;
});
($rc, $out, $err) = $coord->psql('postgres', q{
    MERGE INTO s.m2 AS t USING (WITH w AS MATERIALIZED (SELECT * FROM s.stage) SELECT * FROM w) AS s
       ON t.k = s.k WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)});
like($err, qr/MERGE INTO an distributed table from Postgres table is not yet supported/,
     'Citus 13 refuses a MERGE from a local table into a distributed one, even through a materialized CTE');
sql(q{SELECT pipeline.create_pipeline('loc', 's.stage', 's.m2', unique_key => '{k}',
        incremental_column => 'change_id', delete_column => 'is_deleted')});
like(sql(q{SELECT string_agg(line, E'\n') FROM pipeline.explain('loc') AS line}),
     qr/the keys flagged deleted, then an upsert.*\nWITH s AS MATERIALIZED \(.*\) DELETE FROM s\.m2 AS t USING s WHERE .*\nWITH i AS \(INSERT INTO s\.m2 AS t .* ON CONFLICT \(k\) DO UPDATE SET /s,
     'explain shows the route of a local source: a DELETE of flagged keys, then INSERT ... ON CONFLICT');
my $REF_LOC = q{SELECT k, v FROM (SELECT DISTINCT ON (k) k, v, is_deleted FROM s.stage
                                  ORDER BY k, change_id DESC) x WHERE NOT is_deleted};
sql(q{SELECT pipeline.run('loc')});
is(counts('loc'), 'succeeded read=1000 rejected=0 inserted=200 updated=0 deleted=0 unchanged=0',
   'local source, first run: 1000 changes of 200 keys, all inserted');
is(differs('SELECT k, v FROM s.m2', $REF_LOC), '0', 'local source, first run: the target is the latest change per key');
sql(q{
    INSERT INTO s.stage (k, v) SELECT k, -k FROM generate_series(1, 50) k;
    INSERT INTO s.stage (k, v) SELECT k, 10000 + k FROM generate_series(1, 50) k;
    INSERT INTO s.stage (k, v) SELECT k, v FROM s.m2 WHERE k BETWEEN 51 AND 60;
    INSERT INTO s.stage (k, v, is_deleted) SELECT k, 0, true FROM generate_series(61, 70) k;
    INSERT INTO s.stage (k, v) SELECT k, k FROM generate_series(201, 230) k;
    INSERT INTO s.stage (k, v, is_deleted) SELECT k, 0, true FROM generate_series(231, 235) k;
});
sql(q{SELECT pipeline.run('loc')});
is(counts('loc'), 'succeeded read=155 rejected=0 inserted=30 updated=50 deleted=10 unchanged=15',
   'local source, second run: updates, deletes by flag, duplicates and unknown tombstones counted exactly');
is(differs('SELECT k, v FROM s.m2', $REF_LOC), '0', 'local source, second run: the target equals the reference');
is(sql(q{SELECT count(*) FROM s.m2 WHERE k BETWEEN 61 AND 70 OR k > 230}), '0',
   'local source: flagged keys are gone from the target, unknown tombstones never arrive');
sql(q{SELECT pipeline.run('loc')});
is(sql(q{SELECT idle_runs FROM pipeline.status WHERE name = 'loc'}), '1', 'local source: nothing new, nothing done');

# keyed and keyless append from a local table
sql(q{
    CREATE TABLE s.lap (change_id bigint, k int PRIMARY KEY, v int NOT NULL, is_deleted boolean);
    SELECT create_distributed_table('s.lap', 'k', colocate_with => 's.ev');
    SELECT pipeline.create_pipeline('lap', 's.stage', 's.lap', mode => 'append', unique_key => '{k}',
        incremental_column => 'change_id');
    CREATE TABLE s.llog (id bigserial, k int NOT NULL, v int NOT NULL);
    CREATE TABLE s.lla (id bigint, k int NOT NULL, v int NOT NULL);
    SELECT create_distributed_table('s.lla', 'k', colocate_with => 's.ev');
    INSERT INTO s.llog (k, v) SELECT g % 97, g FROM generate_series(1, 300) g;
    SELECT pipeline.create_pipeline('lla', 's.llog', 's.lla', mode => 'append', incremental_column => 'id');
});
sql(q{SELECT pipeline.run('lap')});
is(counts('lap'), 'succeeded read=1155 rejected=0 inserted=235 updated=0 deleted=0 unchanged=0',
   'keyed append from a local table: one row per key, the latest change');
my $wm_lap = sql(q{SELECT max(change_id) FROM s.stage});
sql(q{INSERT INTO s.stage (k, v) SELECT k, 7 * k FROM generate_series(1, 5) k;
      INSERT INTO s.stage (k, v) SELECT k, 7 * k FROM generate_series(241, 245) k});
sql(q{SELECT pipeline.run('lap')});
is(counts('lap'), 'succeeded read=10 rejected=0 inserted=5 updated=0 deleted=0 unchanged=5',
   'keyed append from a local table, second run: new keys inserted, known keys left alone');
is(differs('SELECT k, v FROM s.lap', qq{
        (SELECT DISTINCT ON (k) k, v FROM s.stage WHERE change_id <= $wm_lap ORDER BY k, change_id DESC)
        UNION ALL SELECT k, 7 * k FROM generate_series(241, 245) k}), '0',
   'keyed append from a local table: the target keeps the first version of each key');
sql(q{SELECT pipeline.run('lla')});
sql(q{INSERT INTO s.llog (k, v) SELECT g % 97, g FROM generate_series(301, 350) g});
sql(q{SELECT pipeline.run('lla')});
is(counts('lla') . ' ' . differs('SELECT id, k, v FROM s.lla', 'SELECT id, k, v FROM s.llog'),
   'succeeded read=50 rejected=0 inserted=50 updated=0 deleted=0 unchanged=0 0',
   'keyless append from a local table: INSERT ... SELECT, every row once');

# soft deletes: the MERGE's flag update pushed down (a distributed staging
# table), and the upsert route's UPDATE (a local one); a tombstone keeps the
# row's last known values and takes its incremental value
for my $case (['sdd', 1], ['sdl', 0]) {
    my ($p, $distributed) = @$case;
    sql(qq{
        CREATE TABLE s.${p}_stage (change_id bigserial, k int NOT NULL, v int NOT NULL,
                                  is_deleted boolean NOT NULL DEFAULT false);
        CREATE TABLE s.$p (change_id bigint, k int PRIMARY KEY, v int NOT NULL, is_deleted boolean);
        SELECT create_distributed_table('s.$p', 'k', colocate_with => 's.ev');
        INSERT INTO s.${p}_stage (k, v) SELECT g, g FROM generate_series(1, 20) g;
    });
    sql(qq{SELECT create_distributed_table('s.${p}_stage', 'k', colocate_with => 's.ev')}) if $distributed;
    sql(qq{SELECT pipeline.create_pipeline('$p', 's.${p}_stage', 's.$p', unique_key => '{k}',
            incremental_column => 'change_id', delete_column => 'is_deleted', soft_delete => true)});
    sql(qq{SELECT pipeline.run('$p')});
    sql(qq{
        INSERT INTO s.${p}_stage (k, v, is_deleted) SELECT g, 0, true FROM generate_series(1, 5) g;
        INSERT INTO s.${p}_stage (k, v) SELECT g, -g FROM generate_series(6, 10) g;
        INSERT INTO s.${p}_stage (k, v, is_deleted) VALUES (99, 0, true);
    });
    sql(qq{SELECT pipeline.run('$p')});
    is(counts($p), 'succeeded read=11 rejected=0 inserted=0 updated=5 deleted=5 unchanged=1',
       "soft delete ($p): flagged, updated and an unknown tombstone counted exactly");
    is(sql(qq{SELECT string_agg(k || ':' || v || ':' || is_deleted || ':' || (change_id > 20), ' ' ORDER BY k)
                FROM s.$p WHERE k <= 6}),
       '1:1:true:true 2:2:true:true 3:3:true:true 4:4:true:true 5:5:true:true 6:-6:false:true',
       "soft delete ($p): tombstoned rows keep their values, take the flag and the tombstone's change id");
    sql(qq{SELECT pipeline.run('$p')});
}

# what that route cannot load is refused at registration, with its reason
sql(q{
    CREATE TABLE s.lfull (change_id bigint, k int PRIMARY KEY, v int, is_deleted boolean);
    SELECT create_distributed_table('s.lfull', 'k', colocate_with => 's.ev');
    CREATE TABLE s.nokey (change_id bigint, k int NOT NULL, v int, is_deleted boolean);
    SELECT create_distributed_table('s.nokey', 'k', colocate_with => 's.ev');
});
($rc, $out, $err) = $coord->psql('postgres', q{\set VERBOSITY verbose
    SELECT pipeline.create_pipeline('lfull', 's.stage', 's.lfull', unique_key => '{k}', mode => 'full')});
like($err, qr/ERROR:  0A000: source s\.stage reads a local table, and target s\.lfull is a Citus distributed table\nDETAIL:  Source s\.stage reads s\.stage, a table of the coordinator only, so Citus cannot MERGE from it\. Mode full deletes the target's vanished keys with a NOT EXISTS over the source, which Citus cannot run between a local and a Citus table\.\nHINT:  Distribute the staging table colocated with the target: SELECT create_distributed_table\('s\.stage', '<key column>', colocate_with => 's\.lfull'\);/,
     'full mode from a local table into a distributed target is refused (0A000) with detail and hint');
($rc, $out, $err) = $coord->psql('postgres', q{\set VERBOSITY verbose
    SELECT pipeline.create_pipeline('nokey', 's.stage', 's.nokey', unique_key => '{k}')});
like($err, qr/ERROR:  0A000: .*\nDETAIL:  .*needs a unique index on exactly the key columns of the target\.\nHINT:  Add a unique index on the key to the target/,
     'a keyed load from a local table into a target without a unique index on the key is refused (0A000)');
is(sql(q{SELECT count(*) FROM pipeline.pipeline WHERE name IN ('lfull', 'nokey')}), '0', 'and nothing is registered');
sql(q{CREATE TABLE s.refm (change_id bigint, k int PRIMARY KEY, v int NOT NULL, is_deleted boolean); SELECT create_reference_table('s.refm')});
($rc, $out, $err) = $coord->psql('postgres', q{\set VERBOSITY verbose
    SELECT pipeline.create_pipeline('reft', 's.stage', 's.refm', unique_key => '{k}')});
like($err, qr/ERROR:  0A000: target s\.refm is a Citus reference table\nDETAIL:  Citus 13 loads with MERGE only into distributed tables\./,
     'a reference table as target is refused (0A000)');

# ---- a worker node stopped before a run: the run fails and is recorded,
# nothing is applied, and the run after the restart is exact
my $WM_M = q{SELECT w.value FROM pipeline.watermark w JOIN pipeline.pipeline p USING (pipeline_id)
              WHERE p.name = 'm'};
my $wm_before = sql($WM_M);
sql(q{INSERT INTO s.ev (k, v) SELECT k, 3 * k FROM generate_series(1, 40) k;
      INSERT INTO s.ev (k, v) SELECT k, k FROM generate_series(300, 309) k});
$workers[1]->stop('fast');
($rc, $out, $err) = $coord->psql('postgres', q{SELECT pipeline.run('m')});
isnt($rc, 0, 'with a worker node down the run fails');
is(sql(q{SELECT status || ' ' || (error_sqlstate IS NOT NULL) FROM pipeline.runs
          WHERE pipeline_name = 'm' ORDER BY run_id DESC LIMIT 1}), 'failed true',
   'the failed run is recorded with its SQLSTATE');
diag('the failed run: ' . sql(q{SELECT error_sqlstate || ' ' || error_message FROM pipeline.runs
                                  WHERE pipeline_name = 'm' ORDER BY run_id DESC LIMIT 1}));
is(sql($WM_M), $wm_before, 'the watermark did not move');
$workers[1]->start;
is(differs('SELECT k, v FROM s.m', qq{
        SELECT k, v FROM (SELECT DISTINCT ON (k) k, v, is_deleted FROM s.ev WHERE change_id <= $wm_before
                          ORDER BY k, change_id DESC) x WHERE NOT is_deleted}), '0',
   'after the restart the target holds nothing of the failed run');
sql(q{SELECT pipeline.run('m')});
# the window also holds the 10 changes of the keyed append's test, 5 of
# them to keys 1..5 (superseded here) and 5 new keys
is(counts('m'), 'succeeded read=60 rejected=0 inserted=15 updated=40 deleted=0 unchanged=0',
   'the next run loads the window exactly');
is(differs('SELECT k, v FROM s.m', $REF_M), '0', 'and the target equals the reference');

# ---- a worker node stopped mid-run: the full run of f has begun deleting
# vanished keys on both workers when worker1, where one shard of the target
# is locked, is stopped; nothing of it may remain
sql(q{
    CREATE TABLE s.f_before AS SELECT * FROM s.f;
    DELETE FROM s.items WHERE k <= 10;
    UPDATE s.items SET price = price + 1 WHERE k BETWEEN 11 AND 20;
});
my $w1port = $workers[0]->port;
my $shard = sql(qq{
    SELECT shard_name('s.f'::regclass, s.shardid) FROM pg_dist_shard s
      JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
     WHERE s.logicalrelid = 's.f'::regclass AND n.nodeport = $w1port ORDER BY 1 LIMIT 1});
my $timer = IPC::Run::timer(120);
my ($lout, $lerr) = ('', '');
my $locker = IPC::Run::start(['psql', '-XAtq', '-d', $workers[0]->connstr('postgres'), '-c',
                              "SET citus.enable_manual_changes_to_shards = on; LOCK TABLE $shard IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(100)"],
                             '>', \$lout, '2>', \$lerr, $timer);
ok($workers[0]->poll_query_until('postgres', qq{
       SELECT count(*) = 1 FROM pg_locks WHERE relation = '$shard'::regclass AND granted}),
   "a session on worker1 holds a lock on shard $shard of the target");
my ($rout, $rerr) = ('', '');
my $runner = IPC::Run::start(['psql', '-XAtq', '-d', $coord->connstr('postgres'),
                              '-c', q{SELECT pipeline.run('f')}], '>', \$rout, '2>', \$rerr, $timer);
ok($workers[0]->poll_query_until('postgres', qq{
       SELECT count(*) > 0 FROM pg_locks WHERE relation = '$shard'::regclass AND NOT granted}),
   'the run waits on worker1 in the middle of its load');
$workers[0]->stop('fast');
$runner->finish;
$locker->finish;
like($rerr, qr/ERROR/, 'the run fails when worker1 stops under it');
$workers[0]->start;
is(sql(q{SELECT status FROM pipeline.runs WHERE pipeline_name = 'f' ORDER BY run_id DESC LIMIT 1}),
   'failed', 'the failed run is recorded');
diag('the failed run: ' . sql(q{SELECT error_sqlstate || ' ' || error_message FROM pipeline.runs
                                  WHERE pipeline_name = 'f' ORDER BY run_id DESC LIMIT 1}));
is(differs('TABLE s.f', 'TABLE s.f_before'), '0',
   'nothing of the failed run is applied on either worker');
sql(q{SELECT pipeline.run('f')});
is(counts('f'), 'succeeded read=85 rejected=0 inserted=0 updated=10 deleted=10 unchanged=75',
   'the next run after the restart is exact');
is(differs('SELECT k, label, price FROM s.f', 'SELECT k, label, price FROM s.items_v'), '0',
   'and the target equals its view');

# Why the load into a distributed table carries no counter functions: Citus
# refuses a MERGE that calls one (they would run on the worker nodes).
($rc, $out, $err) = $coord->psql('postgres', q{
    MERGE INTO s.m AS t USING (SELECT k, v, pipeline._kept_row() AS c FROM s.ev) AS s ON t.k = s.k
    WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)});
like($err, qr/non-IMMUTABLE functions are not yet supported in MERGE sql with distributed tables/,
     'Citus refuses a distributed MERGE that calls a counter function');
is(sql(q{SELECT count(*) FROM pipeline.pipeline}) . '/' .
   $workers[0]->safe_psql('postgres', q{SELECT count(*) FROM pipeline.pipeline}), '13/0',
   'the pipelines are registered on the coordinator only');

$_->stop for ($coord, @workers);
done_testing();
