# test/t/013_openlineage_delivery.pl
# suite: openlineage-delivery
#
# OpenLineage delivery: with pipeline.openlineage_url set, the sender worker
# posts each run's events to a collector, a stand-in started here on
# 127.0.0.1 (test/openlineage/collector.js) that validates every event
# against the official schemas in ../shared/openlineage/spec. A committed
# run's START and COMPLETE (or FAIL, with its error's detail and hint) arrive
# in order; a rolled-back run sends nothing; an endpoint that is down, slow
# or answers 500 gets the events once it recovers; events pending across a
# server restart are delivered after it; an event the collector refuses, or
# that fails too often, is dead with the later events of its run, and
# openlineage_redeliver sends them again; emptying the URL stops the sender
# and the outbox. Needs node, the ajv and ajv-formats packages on
# PP_NODE_PATH and the official schemas in PP_OL_SPEC (scripts/test.sh sets
# both).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use JSON::PP;
use Test::More;

my $spec = $ENV{PP_OL_SPEC} // '';
my $node_path = $ENV{PP_NODE_PATH} // '';
BAIL_OUT('PP_OL_SPEC must name the official OpenLineage schemas')
  unless -f "$spec/2-0-2/OpenLineage.json";
BAIL_OUT('PP_NODE_PATH must reach the ajv and ajv-formats packages')
  unless -d "$node_path/ajv";
my $root = $ENV{TESTDIR};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $url = "http://127.0.0.1:$port/api/v1/lineage";

# The collector: start, stop, and how it answers
my $collector;
sub start_collector {
    unlink "$dir/ready";
    local $ENV{NODE_PATH} = $node_path;
    $collector = IPC::Run::start(
        [ 'node', "$root/test/openlineage/collector.js", $spec, "$root/docs/openlineage", $port, $dir ],
        '>>', "$dir/collector.log", '2>&1');
    for (1 .. 300) { last if -e "$dir/ready"; select(undef, undef, undef, 0.1); }
    die "the collector did not start: " . slurp_file("$dir/collector.log") unless -e "$dir/ready";
}
sub stop_collector { $collector->kill_kill; $collector->finish; undef $collector; }
sub set_mode { open my $fh, '>', "$dir/mode" or die; print $fh shift; close $fh; }

# What the collector received: [{valid, problems, event}, ...]
sub received {
    return [] unless -e "$dir/received.jsonl";
    return [ map { decode_json($_) } grep { /\S/ } split /\n/, slurp_file("$dir/received.jsonl") ];
}
# The event types the collector received for a run, in order (duplicates kept)
sub types_of {
    my ($run_id) = @_;
    return join ' ', map { $_->{event}{eventType} }
      grep { ($_->{event}{run}{facets}{pg_pipeline_run}{runId} // -1) == $run_id } @{ received() };
}
# first_of_each: each type once, at its first arrival
sub first_of_each {
    my %seen;
    return join ' ', grep { !$seen{$_}++ } split / /, types_of(shift);
}

my $node = PostgreSQL::Test::Cluster->new('openlineage_delivery');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_pipeline'
pipeline.databases = 'postgres'
pipeline.check_interval = 1
pipeline.openlineage_url = '$url'
pipeline.openlineage_timeout = 1000
pipeline.openlineage_retry_max = 2
pipeline.openlineage_namespace = 'postgres://db.example.com:5432'
max_worker_processes = 32
});
$node->start;
sub sql { return $node->safe_psql('postgres', shift); }
sub settle {
    my ($what) = @_;
    return $node->poll_query_until('postgres', qq{
        SELECT NOT EXISTS (SELECT 1 FROM pipeline.openlineage_outbox WHERE state = 'pending')
           AND NOT EXISTS (SELECT 1 FROM pipeline.queue)
           AND NOT EXISTS (SELECT 1 FROM pipeline.runs WHERE status = 'running')});
}
sub reload_with {
    my ($setting) = @_;
    sql("ALTER SYSTEM SET $setting");
    sql('SELECT pg_reload_conf()');
    sleep 1;
}

start_collector();
sql(q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    CREATE TABLE s.raw (id bigint PRIMARY KEY, v int NOT NULL);
    SELECT pipeline.create_pipeline('p', 's.raw', 's.t', unique_key => '{id}', incremental_column => 'id');
    CREATE VIEW s.t_sum AS SELECT count(*) AS n, sum(v) AS total FROM s.t;
    SELECT pipeline.create_pipeline('q', 's.t_sum', 's.totals', unique_key => '{n}', mode => 'full');
});
my $next = 0;
sub add_rows {
    my $from = $next + 1;
    $next += 10;
    sql("INSERT INTO s.raw SELECT g, g FROM generate_series($from, $next) g");
}

# 1. a committed run: START and COMPLETE, in order, valid; its downstream
#    run in a worker sends START when it starts and COMPLETE when it ends
add_rows();
my $r1 = sql(q{SELECT pipeline.run('p')});
ok(settle(), 'the outbox empties after a run');
is(types_of($r1), 'START COMPLETE', 'a committed run sends START then COMPLETE');
my $q1 = sql(qq{SELECT run_id FROM pipeline.runs WHERE pipeline_name = 'q' AND parent_run_id = $r1});
ok($q1 > 0, 'the downstream pipeline ran in a worker');
is(types_of($q1), 'START COMPLETE', 'the worker run sends START then COMPLETE');
my ($complete) = grep { $_->{event}{eventType} eq 'COMPLETE' && $_->{event}{run}{facets}{pg_pipeline_run}{runId} == $q1 } @{ received() };
is($complete->{event}{run}{facets}{jobDependencies}{upstream}[0]{job}{name}, 'p',
   'the delivered COMPLETE names the upstream run as a dependency');
is($complete->{event}{outputs}[0]{facets}{dataSource}{name}, 'postgres://db.example.com:5432',
   'datasets carry the dataSource facet of the configured namespace');
is(sql(qq{SELECT string_agg(event_type || ':' || state || ':' || attempts, ' ' ORDER BY event_id)
          FROM pipeline.openlineage_outbox WHERE run_id = $r1}),
   'START:delivered:1 COMPLETE:delivered:1', 'the outbox records each delivery');
is(sql(qq{SELECT count(*) FROM pipeline.openlineage_events($r1) e
          JOIN pipeline.openlineage_outbox o ON o.event = e WHERE o.run_id = $r1}),
   '2', 'openlineage_events returns the events the run stored');

# 2. a rolled-back run sends nothing
add_rows();
my $rb = sql(q{BEGIN; SELECT pipeline.run('p'); ROLLBACK;});
my $r2 = sql(q{SELECT pipeline.run('p')});
ok(settle(), 'the outbox empties after the next run');
is(types_of($rb), '', 'a rolled-back run sent nothing');
is(sql(qq{SELECT count(*) FROM pipeline.openlineage_outbox WHERE run_id = $rb}), '0',
   'a rolled-back run left nothing in the outbox');
is(types_of($r2), 'START COMPLETE', 'the committed run after it was sent');

# 3. failed runs send FAIL, with the detail and hint, and no row value
sql(q{
    CREATE FUNCTION s.boom(i bigint) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'boom at the source' USING DETAIL = 'the detail of boom', HINT = 'the hint of boom';
    END $$;
    CREATE VIEW s.boom_v AS SELECT id, s.boom(id) AS v FROM s.raw;
    SELECT pipeline.create_pipeline('boom', 's.boom_v', 's.boom_t', unique_key => '{id}', mode => 'full');
    CREATE VIEW s.cast_v AS SELECT id, ('x' || id)::int AS v FROM s.raw;
    SELECT pipeline.create_pipeline('cast', 's.cast_v', 's.cast_t', unique_key => '{id}', mode => 'full');
});
$node->psql('postgres', q{SELECT pipeline.run('boom')});
$node->psql('postgres', q{SELECT pipeline.run('cast')});
my $boom = sql(q{SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'boom'});
my $cast = sql(q{SELECT max(run_id) FROM pipeline.runs WHERE pipeline_name = 'cast'});
ok(settle(), 'the failed runs are delivered');
is(types_of($boom), 'START FAIL', 'a failed run sends START then FAIL');
is(sql(qq{SELECT error_detail || ' / ' || error_hint FROM pipeline.runs WHERE run_id = $boom}),
   'the detail of boom / the hint of boom', 'pipeline.runs keeps the detail and hint');
my ($fail) = grep { $_->{event}{eventType} eq 'FAIL' } grep { $_->{event}{run}{facets}{pg_pipeline_run}{runId} == $boom } @{ received() };
like($fail->{event}{run}{facets}{errorMessage}{message},
     qr/^SQLSTATE P0001: boom at the source\nDETAIL: the detail of boom\nHINT: the hint of boom$/,
     'FAIL carries the message, detail and hint');
my ($cfail) = grep { $_->{event}{eventType} eq 'FAIL' } grep { $_->{event}{run}{facets}{pg_pipeline_run}{runId} == $cast } @{ received() };
like($cfail->{event}{run}{facets}{errorMessage}{message}, qr/^SQLSTATE 22P02: message withheld/,
     'a data error has its message withheld');
unlike(encode_json($cfail->{event}), qr/x1/, 'no row value of the data error leaves in the event');

# 4. the endpoint is down, then back
stop_collector();
add_rows();
my $r3 = sql(q{SELECT pipeline.run('p')});
ok($node->poll_query_until('postgres', qq{
    SELECT attempts >= 2 FROM pipeline.openlineage_outbox WHERE run_id = $r3 AND event_type = 'START'}),
   'a down endpoint is tried again');
like(sql(qq{SELECT last_error FROM pipeline.openlineage_outbox WHERE run_id = $r3 AND event_type = 'START'}),
     qr/connect|refused/i, 'the outbox says why');
is(sql(qq{SELECT attempts FROM pipeline.openlineage_outbox WHERE run_id = $r3 AND event_type = 'COMPLETE'}),
   '0', 'COMPLETE waits behind its run\'s START');
start_collector();
ok(settle(), 'the events are delivered once the endpoint is back');
is(first_of_each($r3), 'START COMPLETE', 'in order');

# 5. a slow endpoint (3 s, the timeout is 1 s), then a quick one
set_mode('slow 3000');
add_rows();
my $r4 = sql(q{SELECT pipeline.run('p')});
ok($node->poll_query_until('postgres', qq{
    SELECT attempts >= 1 AND last_error ~* 'time' FROM pipeline.openlineage_outbox
     WHERE run_id = $r4 AND event_type = 'START'}),
   'a slow endpoint times out');
set_mode('ok');
ok(settle(), 'the events are delivered once the endpoint is quick');
is(first_of_each($r4), 'START COMPLETE', 'in order (a late answer to the timed-out post may repeat START)');

# 6. an endpoint that answers 500, then recovers
set_mode('500');
add_rows();
my $r5 = sql(q{SELECT pipeline.run('p')});
ok($node->poll_query_until('postgres', qq{
    SELECT attempts >= 2 AND last_error = 'HTTP 500' FROM pipeline.openlineage_outbox
     WHERE run_id = $r5 AND event_type = 'START'}),
   'a 500 is tried again');
set_mode('ok');
ok(settle(), 'the events are delivered once the endpoint recovers');
is(types_of($r5), 'START COMPLETE', 'in order, each once');

# 7. dead letters: too many attempts, a refusal; redelivery
reload_with(q{pipeline.openlineage_max_attempts = 2});
set_mode('500');
add_rows();
my $r6 = sql(q{SELECT pipeline.run('p')});
ok($node->poll_query_until('postgres', qq{
    SELECT count(*) = 2 FROM pipeline.openlineage_outbox WHERE run_id = $r6 AND state = 'dead'}),
   'an event that fails max_attempts times is dead, with the later events of its run');
is(sql(qq{SELECT string_agg(event_type || ':' || attempts || ':' || last_error, ' | ' ORDER BY event_id)
          FROM pipeline.openlineage_outbox WHERE run_id = $r6}),
   "START:2:HTTP 500 | COMPLETE:0:event "
     . sql(qq{SELECT event_id FROM pipeline.openlineage_outbox WHERE run_id = $r6 AND event_type = 'START'})
     . " of the same run is dead",
   'the dead events say why');
set_mode('refuse');
add_rows();
my $r7 = sql(q{SELECT pipeline.run('p')});
ok($node->poll_query_until('postgres', qq{
    SELECT count(*) = 2 FROM pipeline.openlineage_outbox WHERE run_id = $r7 AND state = 'dead'}),
   'an event the collector refuses is dead at once');
is(sql(qq{SELECT attempts || ':' || last_error FROM pipeline.openlineage_outbox WHERE run_id = $r7 AND event_type = 'START'}),
   '1:HTTP 400: the collector refused the event', 'after one attempt');
set_mode('ok');
is(sql(qq{SELECT pipeline.openlineage_redeliver($r6)}), '2', 'openlineage_redeliver revives a run\'s dead events');
my $dead = sql(q{SELECT count(*) FROM pipeline.openlineage_outbox WHERE state = 'dead'});
ok($dead >= 2, 'the refused run and the downstream runs of both have dead events');
is(sql(q{SELECT pipeline.openlineage_redeliver()}), $dead, 'without a run, openlineage_redeliver revives every dead event');
ok(settle(), 'the revived events are delivered');
is(types_of($r6), 'START COMPLETE', 'in order');
is(types_of($r7), 'START COMPLETE', 'in order');
reload_with(q{pipeline.openlineage_max_attempts = 10});

# 8. events pending across a server restart
stop_collector();
add_rows();
my $r8 = sql(q{SELECT pipeline.run('p')});
$node->restart;
is(sql(qq{SELECT count(*) FROM pipeline.openlineage_outbox WHERE run_id = $r8 AND state = 'pending'}),
   '2', 'pending events survive a restart');
start_collector();
ok(settle(), 'and are delivered after it');
is(types_of($r8), 'START COMPLETE', 'in order');

# 9. who sees the outbox
sql(q{CREATE ROLE outsider LOGIN});
is($node->safe_psql('postgres', q{SET ROLE outsider; SELECT count(*) FROM pipeline.openlineage_deliveries}),
   '0', 'a role that sees no pipeline sees no delivery');
my ($rc, $out, $err) = $node->psql('postgres', q{SET ROLE outsider; SELECT count(*) FROM pipeline.openlineage_outbox});
like($err, qr/permission denied/, 'nor the outbox table');
is($node->safe_psql('postgres', qq{SET ROLE outsider; SELECT pipeline.openlineage_redeliver()}), '0',
   'and revives nothing');

# 10. every event the collector got is valid; every delivered one arrived
my @invalid = grep { !$_->{valid} } @{ received() };
is(scalar(@invalid), 0, 'every received event is valid against the official schemas')
  or diag(explain([ map { $_->{problems} } @invalid ]));
my %got = map { ($_->{event}{run}{facets}{pg_pipeline_run}{runId} . ':' . $_->{event}{eventType}) => 1 } @{ received() };
my @missing = grep { !$got{$_} } split /\n/,
  sql(q{SELECT run_id || ':' || event_type FROM pipeline.openlineage_outbox WHERE state = 'delivered'});
is(scalar(@missing), 0, 'every event marked delivered was received') or diag("@missing");

# 11. emptying the URL stops the sender and the outbox
reload_with(q{pipeline.openlineage_url = ''});
ok($node->poll_query_until('postgres', q{
    SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_pipeline openlineage sender')}),
   'the sender stops');
add_rows();
my $r9 = sql(q{SELECT pipeline.run('p')});
is(sql(qq{SELECT count(*) FROM pipeline.openlineage_outbox WHERE run_id = $r9}), '0',
   'runs write no events while delivery is off');
is(sql(qq{SELECT count(*) FROM pipeline.openlineage_events($r9)}), '2',
   'openlineage_events still builds them');

stop_collector();
done_testing();
