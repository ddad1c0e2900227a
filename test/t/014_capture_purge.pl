# test/t/014_capture_purge.pl
#
# The launcher purges captured changes (docs/capture.md#purge), with
# pg_pipeline preloaded:
#
# - a capture whose only pipeline has not run yet keeps everything, pass
#   after pass;
# - once the pipeline has loaded, the launcher deletes what it loaded, in
#   batches of 10,000 (several passes, one batch per capture each), and
#   nothing it has not loaded: changes made after the run stay;
# - each batch is counted in pipeline.captures and audited (capture_purge);
#   the audited counts add up to the changes purged;
# - a capture_retention keeps loaded changes: nothing is purged within it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('capture_purge');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_pipeline'
pipeline.databases = 'postgres'
pipeline.check_interval = 1
max_worker_processes = 16
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# passes waits until the launcher has made n more passes
sub passes {
    my ($n) = @_;
    my $now = sql(q{SELECT passes FROM pipeline.launcher_status()});
    $node->poll_query_until('postgres',
        qq{SELECT passes >= $now + $n FROM pipeline.launcher_status()})
      or die "the launcher made no passes";
}

sql(q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    CREATE TABLE s.t (id int PRIMARY KEY, v text);
    INSERT INTO s.t SELECT g, 'v' || g FROM generate_series(1, 25000) g;
    SELECT pipeline.create_pipeline('p', 's.t', 's.t_copy', capture => true);
});
is(sql(q{SELECT count(*) FROM s.t__changes}), '25000', 'capture copied the table: 25,000 changes');

passes(3);
is(sql(q{SELECT purged_changes || ' ' || purges FROM pipeline.captures}), '0 0',
   'nothing purged while the pipeline has not run');

sql(q{SELECT pipeline.run('p')});
sql(q{UPDATE s.t SET v = v || '!' WHERE id <= 100});
$node->poll_query_until('postgres', q{SELECT purged_changes = 25000 FROM pipeline.captures})
  or die "the launcher did not purge";
is(sql(q{SELECT purged_changes || ' ' || purged_through || ' ' || purges FROM pipeline.captures}),
   '25000 25000 3', 'the launcher purged what the pipeline loaded, in three batches');
is(sql(q{SELECT count(*) || ' ' || min(_change_id) FROM s.t__changes}), '100 25001',
   'the changes made after the run stay');
is(sql(q{SELECT count(*) || ' ' || sum((config_after->>'changes')::bigint) FROM pipeline.audit_log
         WHERE action = 'capture_purge'}), '3 25000', 'each batch audited, the counts add up');

sql(q{SELECT pipeline.run('p')});
$node->poll_query_until('postgres', q{SELECT purged_changes = 25100 FROM pipeline.captures})
  or die "the launcher did not purge the second run's changes";
is(sql(q{SELECT count(*) FROM s.t__changes}), '0', 'after the next run, those go too');
is(sql(q{SELECT count(*) FROM (SELECT id, v FROM s.t EXCEPT ALL SELECT id, v FROM s.t_copy) d}), '0',
   'the target is the table');

sql(q{SELECT pipeline.alter_pipeline('p', capture_retention => '1 hour')});
sql(q{UPDATE s.t SET v = v || '?' WHERE id <= 10});
sql(q{SELECT pipeline.run('p')});
passes(3);
is(sql(q{SELECT purged_changes || ' ' || (SELECT count(*) FROM s.t__changes) FROM pipeline.captures}),
   '25100 10', 'a loaded change within the retention is kept');

$node->stop;
done_testing();
