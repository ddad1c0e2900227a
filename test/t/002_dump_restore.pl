# test/t/002_dump_restore.pl
#
# The catalog tables are extension configuration tables, so pg_dump and a
# restore keep every pipeline, its watermark and its run history, and the
# restored pipelines go on from where they were.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump_restore');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE origin');
$node->safe_psql('origin', q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA raw;
    CREATE TABLE raw.orders (id bigserial PRIMARY KEY, k int, amount int);
    INSERT INTO raw.orders (k, amount) SELECT g % 10, g FROM generate_series(1, 100) g;
    SELECT pipeline.create_pipeline('orders', 'raw.orders', 'public.orders',
        unique_key => ARRAY['k'], incremental_column => 'id',
        description => 'restored?', metadata => '{"team": "dwh"}');
    SELECT pipeline.run('orders');
    SELECT pipeline.pause('orders');
});

my $catalog = q{
    SELECT name, source, target, mode, unique_key, incremental_column, active,
           owner, watermark, last_run_id, last_run_status, description, metadata
      FROM pipeline.pipelines ORDER BY id};
my $history = q{
    SELECT run_id, pipeline_name, status, rows_read, rows_inserted, watermark_to
      FROM pipeline.runs ORDER BY run_id};
my $before = $node->safe_psql('origin', $catalog);
my $runs_before = $node->safe_psql('origin', $history);

my $dump = $node->basedir . '/origin.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('origin'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d',
                    $node->connstr('restored'), '-f', $dump ], 'restore');

is($node->safe_psql('restored', $catalog), $before, 'pipelines and watermarks survive');
is($node->safe_psql('restored', $history), $runs_before, 'run history survives');

$node->safe_psql('restored', q{
    SELECT pipeline.resume('orders');
    INSERT INTO raw.orders (k, amount) VALUES (1, 1000), (42, 42);
});
my $run_id = $node->safe_psql('restored', "SELECT pipeline.run('orders')");
ok($run_id > $node->safe_psql('origin', 'SELECT max(run_id) FROM pipeline.runs'),
   'run ids continue after the restored history');
is($node->safe_psql('restored', q{
    SELECT rows_read || ' ' || rows_inserted || ' ' || rows_updated
      FROM pipeline.runs ORDER BY run_id DESC LIMIT 1}),
   '2 1 1', 'the restored pipeline reads only what is new');

$node->stop;
done_testing();
