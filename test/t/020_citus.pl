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

sql(q{SELECT pipeline.run('m')});
is(counts('m'), 'succeeded read=0 rejected=0 inserted=0 updated=0 deleted=0 unchanged=0',
   'merge, nothing new: all counts zero');

# Why the load into a distributed table carries no counter functions: Citus
# refuses a MERGE that calls one (they would run on the worker nodes).
my ($rc, $out, $err) = $coord->psql('postgres', q{
    MERGE INTO s.m AS t USING (SELECT k, v, pipeline._kept_row() AS c FROM s.ev) AS s ON t.k = s.k
    WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)});
like($err, qr/non-IMMUTABLE functions are not yet supported in MERGE sql with distributed tables/,
     'Citus refuses a distributed MERGE that calls a counter function');
is(sql(q{SELECT count(*) FROM pipeline.pipeline}) . '/' .
   $workers[0]->safe_psql('postgres', q{SELECT count(*) FROM pipeline.pipeline}), '1/0',
   'the pipelines are registered on the coordinator only');

$_->stop for ($coord, @workers);
done_testing();
