# test/t/007_sqlsmith.pl
# suite: sqlsmith
#
# sqlsmith (Debian's package) generates random queries from the catalog of a
# database that has pg_pipeline, a few pipelines with runs (succeeded and
# failed), lineage, audit entries and queued work, and its background
# workers running. It connects as a role that is not a superuser and owns
# some of the pipelines. The run is bounded by PP_SQLSMITH_QUERIES (default
# 20,000) and PP_SQLSMITH_SECONDS (default 120), whichever comes first.
#
# It fails on any server crash: the postmaster must be the one that was
# started, and the server log must show no process terminated by a signal,
# no PANIC and no failed assertion. Errors of the random queries themselves
# are expected (sqlsmith reports them by kind on its standard error, shown
# below as a diagnostic).
#
# The seed is printed; PP_SEED=<seed> gives sqlsmith the same seed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../reliability";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use Time::HiRes qw(time);
use Reliability qw(pick_seed postmaster_pid postmaster_alive crash_lines);

my $QUERIES = $ENV{PP_SQLSMITH_QUERIES} // 20000;
my $SECONDS = $ENV{PP_SQLSMITH_SECONDS} // 120;
my $seed = pick_seed('sqlsmith');

my ($sqlsmith) = grep { -x $_ } map { "$_/sqlsmith" } split /:/, $ENV{PATH};
if (!$sqlsmith) {
    # install-deps.sh installs it; a missing binary is a failure, not a skip
    fail('sqlsmith is installed (apt-get install sqlsmith)');
    done_testing();
    exit 0;
}

my $node = PostgreSQL::Test::Cluster->new('sqlsmith');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_pipeline'
pipeline.databases = 'postgres'
pipeline.check_interval = 1
max_worker_processes = 32
log_min_messages = warning
log_min_error_statement = panic
});
$node->start;
my $pm_pid = postmaster_pid($node);

sub sql { return $node->safe_psql('postgres', shift); }

sql(q{
    CREATE EXTENSION pg_pipeline;
    CREATE ROLE smith LOGIN;
    CREATE ROLE other LOGIN;
    CREATE SCHEMA sm AUTHORIZATION smith;
    CREATE SCHEMA ot AUTHORIZATION other;
});
$node->safe_psql('postgres', q{
    SET ROLE other;
    CREATE TABLE ot.src (id bigserial PRIMARY KEY, v int, ts timestamptz DEFAULT now());
    INSERT INTO ot.src (v) SELECT g FROM generate_series(1, 100) g;
    SELECT pipeline.create_pipeline('other_copy', 'ot.src', 'ot.dst', unique_key => '{id}',
                                    incremental_column => 'id');
    SELECT pipeline.run('other_copy');
});
$node->safe_psql('postgres', q{
    SET ROLE smith;
    CREATE TABLE sm.orders (change_id bigserial PRIMARY KEY, order_id int NOT NULL, amount numeric,
                            status text, at timestamptz DEFAULT now(), is_deleted boolean DEFAULT false);
    INSERT INTO sm.orders (order_id, amount, status)
        SELECT g % 50, g * 1.5, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END FROM generate_series(1, 300) g;
    SELECT pipeline.create_pipeline('orders', 'sm.orders', 'sm.cur', unique_key => '{order_id}',
                                    incremental_column => 'change_id', delete_column => 'is_deleted');
    CREATE VIEW sm.by_status AS SELECT status, count(*) AS n, sum(amount) AS total FROM sm.cur GROUP BY status;
    SELECT pipeline.create_pipeline('by_status', 'sm.by_status', 'sm.agg', unique_key => '{status}', mode => 'full');
    CREATE VIEW sm.broken AS SELECT order_id, 1 / (order_id - order_id) AS boom FROM sm.cur;
    SELECT pipeline.create_pipeline('broken', 'sm.broken', 'sm.broken_t', unique_key => '{order_id}', mode => 'full');
    SELECT pipeline.create_pipeline('log', 'sm.orders', 'sm.log', mode => 'append',
                                    incremental_column => 'change_id', batch_rows => 100);
    SELECT pipeline.run('orders');
    CALL pipeline.run_batched('log');
});
$node->psql('postgres', q{SET ROLE smith; SELECT pipeline.run('broken');});
ok($node->poll_query_until('postgres', q{
        SELECT count(*) >= 2 FROM pipeline.runs WHERE pipeline_name = 'by_status' OR status = 'failed'}),
   'the pipelines have runs, succeeded and failed, some by the workers');

my ($out, $err) = ('', '');
my $started = time();
my $h = IPC::Run::start(
    [ $sqlsmith, '--target=host=' . $node->host . ' port=' . $node->port . ' dbname=postgres user=smith',
      "--seed=$seed", "--max-queries=$QUERIES", '--verbose' ],
    '>', \$out, '2>', \$err, IPC::Run::timeout($SECONDS + 30));
# sqlsmith stops by itself after --max-queries; past the time budget it is
# interrupted, which is a normal end of the run too
my $timed_out = 0;
while ($h->pumpable) {
    last unless eval { $h->pump_nb; 1 };
    if (time() - $started > $SECONDS) { $timed_out = 1; last; }
    select(undef, undef, undef, 0.5);
}
$h->signal('INT') if $timed_out;
eval { $h->finish; 1 } or $h->kill_kill;
my $elapsed = time() - $started;

# sqlsmith's progress lines end with the number of queries generated
my ($queries) = reverse($err =~ /queries: (\d+)/g);
$queries //= 0;
diag(sprintf('sqlsmith: %s queries in %.0f s%s', $queries, $elapsed, $timed_out ? ' (time budget reached)' : ''));
my @errkinds = grep { /^\s*\d+\t/ } split /\n/, $err;
diag("error kinds (count, first line):\n" . join("\n", @errkinds[0 .. ($#errkinds < 15 ? $#errkinds : 14)]))
  if @errkinds;
ok($queries > 0, "sqlsmith generated and sent queries ($queries)")
  or diag("sqlsmith's output:\n" . substr($err, -3000));

ok(postmaster_alive($pm_pid) && (postmaster_pid($node) // 0) == $pm_pid,
   'the postmaster that was started is still running');
my @crashes = crash_lines($node, 0);
is(scalar(@crashes), 0, 'the server log shows no crash')
  or diag(join("\n", @crashes[0 .. ($#crashes < 20 ? $#crashes : 19)]));
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server answers');
is(sql(q{SELECT valid FROM pipeline.verify_audit()}), 't', 'the audit chain is still valid');

$node->stop;
done_testing();
