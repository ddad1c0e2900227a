# test/t/005_api_fuzz.pl
# suite: fuzz
#
# API fuzz: every function and procedure of schema "pipeline", enumerated
# from pg_proc when the test runs (so a new function is covered without
# touching this file), called PP_FUZZ_CALLS times in all (default 5,000) by
# a role that is not a superuser, owns pipelines of its own and does not own
# others'. Arguments are random and edge values, chosen by argument name
# first (pipeline names, every relation kind, column names, modes,
# schedules, watermarks, apply specs, run ids) and by type otherwise (NULL,
# empty and over-long strings, quotes, unicode, extreme numbers and
# intervals, infinity and NaN, bad JSON). A third of the calls run inside an
# explicit transaction that is then committed or rolled back.
#
# Asserted, per function: no SQLSTATE of class XX (internal error), the
# session stays usable after every error (ROLLBACK is clean, SELECT 1
# answers, current_user and search_path are the session's own), and a call
# that was refused or rolled back changed nothing in pipeline.pipeline,
# pipeline.watermark, pipeline.dependency, pipeline.run_queue and cron.job.
# Every 250 calls, every view of schema pipeline that the role may read must
# answer it. At the end: the postmaster is the one that was started and the
# server log shows no crash; every pipeline has a watermark row; no run is
# left 'running'; verify_audit() is valid; the other role's pipelines are
# exactly as they were; every owner is unchanged.
#
# The seed is printed; PP_SEED=<seed> repeats a run call for call, and
# PP_FUZZ_SHOW=<regex> prints every call that failed with a matching SQLSTATE.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../reliability";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DBI;
use Time::HiRes qw(time);
use Reliability qw(pick_seed postmaster_pid postmaster_alive crash_lines);

my $CALLS = $ENV{PP_FUZZ_CALLS} // 5000;
my $seed = pick_seed('api fuzz');

my $node = PostgreSQL::Test::Cluster->new('api_fuzz');
$node->init;
# pg_cron is there so that schedule() and friends do real work, but it never
# launches a job (max_running_jobs = 0): nothing may change the catalog
# behind the fuzzer's back. No pg_pipeline launcher for the same reason.
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.max_running_jobs = 0
max_worker_processes = 16
log_min_messages = warning
});
$node->start;
my $pm_pid = postmaster_pid($node);

sub sql { return $node->safe_psql('postgres', shift); }

# ---------------------------------------------------------------- set-up
sql(q{
    CREATE EXTENSION pg_cron;
    CREATE EXTENSION pg_pipeline;
    CREATE EXTENSION file_fdw;
    CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
    CREATE ROLE fuzzer LOGIN;
    CREATE ROLE other LOGIN;
    GRANT USAGE ON SCHEMA cron TO fuzzer, other;
    CREATE SCHEMA fz AUTHORIZATION fuzzer;
    CREATE SCHEMA ot AUTHORIZATION other;
    CREATE FOREIGN TABLE fz.ft (id bigint, v int) SERVER files
        OPTIONS (filename '/dev/null', format 'csv');
    ALTER FOREIGN TABLE fz.ft OWNER TO fuzzer;
});
$node->safe_psql('postgres', q{
    SET ROLE other;
    CREATE TABLE ot.t (id bigserial PRIMARY KEY, v int, ts timestamptz DEFAULT now());
    INSERT INTO ot.t (v) SELECT g FROM generate_series(1, 20) g;
    GRANT USAGE ON SCHEMA ot TO fuzzer;
    GRANT SELECT ON ot.t TO fuzzer;
    SELECT pipeline.create_pipeline('other_merge', 'ot.t', 'ot.t_merge', unique_key => '{id}',
                                    incremental_column => 'id');
    SELECT pipeline.create_pipeline('other_full', 'ot.t', 'ot.t_full', unique_key => '{id}', mode => 'full');
    SELECT pipeline.run('other_merge');
    SELECT pipeline.run('other_full');
});
$node->safe_psql('postgres', q{
    SET ROLE fuzzer;
    CREATE TABLE fz.t (id bigserial PRIMARY KEY, k int, v text, ts timestamptz DEFAULT now(),
                       del boolean NOT NULL DEFAULT false);
    CREATE INDEX ON fz.t (ts);
    INSERT INTO fz.t (k, v, ts) SELECT g % 7, 'v' || g, now() - g * interval '1 minute'
      FROM generate_series(1, 50) g;
    CREATE VIEW fz.v AS SELECT id, k, v, ts, del FROM fz.t WHERE k <> 3;
    CREATE MATERIALIZED VIEW fz.mv AS SELECT id, k, v FROM fz.t;
    CREATE TABLE fz.pt (id bigint NOT NULL, ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts);
    CREATE TABLE fz.pt_old PARTITION OF fz.pt FOR VALUES FROM (MINVALUE) TO ('2000-01-01');
    CREATE TABLE fz.pt_new PARTITION OF fz.pt DEFAULT;
    INSERT INTO fz.pt SELECT g, now() - g * interval '1 day', g FROM generate_series(1, 20) g;
    CREATE SEQUENCE fz.seq;
    CREATE TYPE fz.typ AS (a int, b text);
    CREATE TABLE fz."Weird ""Rel""" ("Id" int PRIMARY KEY, "we""ird" text, "__pipeline_kept" int);
    INSERT INTO fz."Weird ""Rel""" VALUES (1, 'a', 1), (2, 'b', 2);
    CREATE DOMAIN fz.posint AS bigint CHECK (VALUE > 0);
    CREATE TABLE fz.d (id fz.posint PRIMARY KEY, v int);
    INSERT INTO fz.d SELECT g, g FROM generate_series(1, 5) g;
    -- odd values: infinite timestamps, the extremes of bigint
    CREATE TABLE fz.inf (id bigint PRIMARY KEY, ts timestamptz, v int);
    INSERT INTO fz.inf VALUES (1, '-infinity', 1), (2, now(), 2), (3, 'infinity', 3),
                              (9223372036854775807, now(), 4), (-9223372036854775808, now(), 5);
    CREATE VIEW fz.bad_v AS SELECT id, k, 1 / (k - k) AS boom FROM fz.t;
});

# baseline pipelines of the fuzzer; recreated when the fuzz drops them
my @BASE = (
    [ 'own_merge', q{'fz.t', 'fz.t_merge_%d', unique_key => '{id}', incremental_column => 'id', delete_column => 'del'} ],
    [ 'own_ts', q{'fz.t', 'fz.t_ts_%d', unique_key => '{id}', incremental_column => 'ts', lookback => '1 hour'} ],
    [ 'own_full', q{'fz.v', 'fz.v_full_%d', unique_key => '{id}', mode => 'full'} ],
    [ 'own_append', q{'fz.pt', 'fz.pt_app_%d', mode => 'append', incremental_column => 'id'} ],
    [ qq{own "q'uote" \x{1F418}}, q{'fz.mv', 'fz.mv_t_%d', unique_key => '{id}', mode => 'full'} ],
    [ 'own_batched', q{'fz.t', 'fz.t_b_%d', unique_key => '{id}', incremental_column => 'id', batch_rows => 7} ],
    [ 'own_inf', q{'fz.inf', 'fz.inf_t_%d', unique_key => '{id}', incremental_column => 'ts'} ],
    [ 'own_bad', q{'fz.bad_v', 'fz.bad_t_%d', unique_key => '{id}', mode => 'full'} ],
);
my $generation = 0;

# ---------------------------------------------------------------- connections
my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
my $su = DBI->connect($dsn, undef, undef,
    { AutoCommit => 1, RaiseError => 1, PrintError => 0, PrintWarn => 0, pg_enable_utf8 => 1 })
  or BAIL_OUT("cannot connect as superuser: $DBI::errstr");
$su->do(q{SET client_min_messages = error});

my $fz;
my $session_path;
sub connect_fuzzer {
    $fz->disconnect if $fz;
    $fz = DBI->connect($dsn, 'fuzzer', undef,
        { AutoCommit => 1, RaiseError => 0, PrintError => 0, PrintWarn => 0,
          pg_enable_utf8 => 1, pg_server_prepare => 0 })
      or BAIL_OUT("cannot connect as fuzzer: $DBI::errstr");
    $fz->do(q{SET client_min_messages = error});
    $fz->do(q{SET statement_timeout = '20s'});
    $fz->do(q{SET lock_timeout = '10s'});
    $fz->do(q{SET search_path = fz, public});
    $fz->do(q{CREATE TEMP TABLE tt (id bigint PRIMARY KEY, v int)});
    $fz->do(q{INSERT INTO tt VALUES (1, 1), (2, 2)});
    $session_path = $fz->selectrow_array(q{SELECT current_setting('search_path')});
}

# maintain keeps the fuzz interesting: fresh rows in the sources (also odd
# ones), the baseline pipelines present and run. Not counted as fuzz calls.
sub maintain {
    $generation++;
    connect_fuzzer();
    my $g = $generation;
    $fz->do(qq{INSERT INTO fz.t (k, v, ts, del)
               SELECT g % 7, 'g$g-' || g, now() + g * interval '1 second', g % 11 = 0
                 FROM generate_series(1, 10) g});
    $fz->do(q{UPDATE fz.t SET v = v || '!', ts = now() WHERE id % 13 = } . ($g % 13));
    $fz->do(qq{INSERT INTO fz.pt SELECT 1000 * $g + g, now() - g * interval '1 hour', g
                 FROM generate_series(1, 5) g});
    $fz->do(q{REFRESH MATERIALIZED VIEW fz.mv});
    my %have = map { $_->[0] => 1 }
      @{ $su->selectall_arrayref(q{SELECT name FROM pipeline.pipeline}) };
    for my $b (@BASE) {
        my ($name, $args) = @$b;
        next if $have{$name};
        my $a = sprintf($args, $g);
        $fz->do(sprintf(q{SELECT pipeline.create_pipeline(%s, %s)}, lit($name), $a));
    }
    for my $b (@BASE) {
        $fz->do(sprintf(q{SELECT pipeline.resume(%s)}, lit($b->[0])));
        $fz->do(sprintf(q{SELECT pipeline.run(%s)}, lit($b->[0])));
    }
}

# ---------------------------------------------------------------- values
sub lit { my $s = shift; $s =~ s/'/''/g; return "'$s'"; }
sub pick { return $_[ int(rand(@_)) ]; }

my @PIPELINE_NAMES;    # refreshed from the catalog
my @RUN_IDS;
my @PIPELINE_IDS;
my @RELS = ('fz.t', 'fz.v', 'fz.mv', 'fz.pt', 'fz.pt_old', 'fz.ft', 'fz.seq', 'fz.t_pkey',
    'fz.typ', 'tt', 'pg_temp.tt', 'fz."Weird ""Rel"""', 'fz.d', 'fz.inf', 'fz.bad_v',
    'ot.t', 'ot.t_merge', 'pipeline.pipeline', 'pipeline.status', 'pipeline.runs',
    'pipeline.pipelines', 'pipeline.audit_log', 'pg_catalog.pg_class', 'pg_catalog.pg_proc',
    'cron.job', 'information_schema.tables', '0', '1259', '-', '4294967295', 'nosuch.rel', 'fz.nosuch');
my @TARGETS = ((map { "fz.tg_$_" } 0 .. 9), 'fz.t', 'fz.v', 'fz.mv', 'fz.pt', 'fz.ft', 'fz.seq',
    'fz.t_pkey', 'tt', 'pg_temp.tt', 'pg_temp.newtemp', 'ot.t', 'ot.t_merge', 'ot.new',
    'pipeline.pipeline', 'pipeline.watermark', 'pg_catalog.pg_class', 'nosuch.t',
    'db.fz.t', 'a.b.c.d', '"fz"."Mixed ""Q"" \x{e9}"', 'fz."Weird ""Rel"""', 'fz.d', 'plain_name',
    '', ' ', '.', 'fz.', '"unterminated', 'fz.' . ('x' x 70));
my @COLUMNS = ('id', 'k', 'v', 'ts', 'del', 'Id', '"Id"', 'we"ird', '__pipeline_kept',
    '__pipeline_row', 'nosuch', '', ' ', 'x' x 64, 'ctid', 'xmin', 'oid', 'tableoid');
my @KEYS = ('{}', '{id}', '{k}', '{v}', '{id,k}', '{id,id}', '{NULL}', '{""}', '{nosuch}',
    '{ctid}', '{Id}', '{"we\"ird"}', '{{id},{k}}', '[0:1]={id,k}', '{__pipeline_kept}',
    '{' . join(',', ('id') x 200) . '}');
my @MODES = ('merge', 'append', 'full', '', 'MERGE', 'snapshot', 'rollup', 'merge ');
my @SCHEDULES = ('* * * * *', '*/5 * * * *', '0 0 31 2 *', '@reboot', '@daily', '60 * * * *',
    '* * * * * *', '1 seconds', 'bogus', '', '0-59/0 * * * *', '*/1000000000 * * * *',
    '5-1 * * * *', ('* ' x 300), "\x{1F418}");
my @WATERMARKS = ('0', '1', '-1', '9223372036854775807', '-9223372036854775808',
    '9223372036854775808', 'infinity', '-infinity', 'NaN', '2024-01-01', '2024-01-01 12:00:00+02',
    '294276-12-31 23:59:59', '4713-01-01 BC', 'epoch', 'abc', '', ' 42 ', '1e10', '0x10');
my @TEXTS = ('', ' ', 'x', 'own_merge', 'other_merge', 'x' x 63, 'x' x 64, 'y' x 5000,
    "it's", '"quoted"', "back\\slash", "tab\there", "new\nline", "\x{c3}\x{a9}",
    "\x{00e9}t\x{00e9} \x{1F418}\x{200b}", "\x{202e}rtl", 'NULL', '%s%n%x', ';DROP TABLE fz.t;--',
    '$$', 'pg_temp.tt', 'fz.t', '-1', '9223372036854775808', 'infinity', 'NaN', '{}', '[]');
my @BIGINTS = ('0', '1', '-1', '2', '7', '100', '2147483648', '9223372036854775807',
    '-9223372036854775808');
my @INTS = ('0', '1', '-1', '3', '100', '2147483647', '-2147483648');
my @INTERVALS = ('0', '1 microsecond', '1 second', '-1 second', '10 seconds', '1 hour', '1 day',
    '-5 days', '1 mon -30 days', '178000000 years', '-178000000 years', '2147483647 days',
    '2147483647 hours', '00:00:00.000001', '1 year 2 mons 3 days 04:05:06.789');
my @TIMES = ('infinity', '-infinity', 'now', 'epoch', '2024-01-01 00:00:00+00',
    '4713-01-01 00:00:00+00 BC', '294276-12-31 23:59:59+00', '2038-01-19 03:14:08+00');
my @JSONS = ('{}', '[]', 'null', '1', '-1e308', '"s"', 'true', '{"a": 1}', '[{}]',
    '{"team": "\u00e9 \ud83d\udc18"}', '{"a": "\u0000"}', '{"x": ' . ('[' x 300) . (']' x 300) . '}',
    '{"a":}', '{', "{'a': 1}", '[1,2', '', '{"a": 1, "a": 2}');
my @BOOLS = ('true', 'false');

# json_str renders a Perl string as a JSON string
sub json_str {
    my $s = shift;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/\n/\\n/g;
    $s =~ s/\t/\\t/g;
    return qq{"$s"};
}

# a_spec makes a pipeline spec for apply(): plausible more often than not
sub a_spec {
    my @keys = ('name', 'source', 'target', 'unique_key', 'incremental_column', 'mode',
        'delete_column', 'partition_column', 'lookback', 'description', 'lineage_column',
        'soft_delete', 'create_target', 'batch_rows', 'metadata', 'bogus_key');
    my %o;
    if (rand() < 0.6) {
        %o = (name => json_str(rand() < 0.5 ? pick(@PIPELINE_NAMES) : 'fz_' . int(rand(12))), source => json_str(pick('fz.t', 'fz.v', 'fz.pt')),
            target => json_str('fz.ap_' . int(rand(12))), unique_key => '["id"]');
        $o{incremental_column} = json_str(pick('id', 'ts')) if rand() < 0.6;
        $o{mode} = json_str(pick('merge', 'full', 'append')) if rand() < 0.4;
    }
    for (1 .. int(rand(4))) {
        my $k = pick(@keys);
        $o{$k} = pick(json_str(pick(@TEXTS, @COLUMNS)), 'null', '1', '-1', 'true', '[]', '{}',
            '["id"]', '["id", "id"]', '[null]', '9223372036854775808', '1.5');
    }
    my $obj = '{' . join(', ', map { json_str($_) . ': ' . $o{$_} } sort keys %o) . '}';
    return rand() < 0.2 ? "[$obj, $obj]" : $obj;
}

# a_value renders one argument as SQL: a typed literal or NULL
sub a_value {
    my ($argname, $type) = @_;
    return 'NULL' if rand() < 0.03;
    return "NULL::$type" if rand() < 0.06;
    my $byname = rand() < 0.75;
    my $n = $argname // '';
    my $v;
    if ($byname && $n =~ /^(name|new_name)$/) {
        $v = rand() < 0.5 ? pick(@PIPELINE_NAMES) : pick(map({ "fz_$_" } 0 .. 11), 'nosuch', @TEXTS);
    } elsif ($byname && $n =~ /^(source|relation|around)$/) {
        $v = pick(@RELS);
    } elsif ($byname && $n eq 'target') {
        $v = pick(@TARGETS);
    } elsif ($byname && $n =~ /column/) {
        $v = pick(@COLUMNS);
    } elsif ($byname && $n eq 'unique_key') {
        $v = pick(@KEYS);
    } elsif ($byname && $n eq 'depends_on') {
        $v = '{' . join(',', map { my $s = $_; $s =~ s/(["\\])/\\$1/g; qq{"$s"} }
            map { pick(@PIPELINE_NAMES, 'nosuch', '') } 1 .. int(rand(4))) . '}';
    } elsif ($byname && $n eq 'mode') {
        $v = pick(@MODES);
    } elsif ($byname && $n eq 'schedule') {
        $v = pick(@SCHEDULES);
    } elsif ($byname && $n eq 'watermark') {
        $v = pick(@WATERMARKS);
    } elsif ($byname && $n eq 'format') {
        $v = pick('dot', 'mermaid', 'json', 'DOT', '', 'svg');
    } elsif ($byname && $n eq 'spec') {
        $v = a_spec();
    } elsif ($byname && $n =~ /run_id/) {
        $v = pick(@RUN_IDS, @BIGINTS);
    } elsif ($byname && $n =~ /pipeline_id/) {
        $v = pick(@PIPELINE_IDS, @BIGINTS);
    } elsif ($type =~ /^(text|name|character varying|"char"|character)$/) {
        $v = pick(@TEXTS, @PIPELINE_NAMES);
    } elsif ($type eq 'regclass') {
        $v = pick(@RELS);
    } elsif ($type =~ /\[\]$/) {
        $v = pick(@KEYS, '{own_merge,other_merge}', '{NULL,NULL}');
    } elsif ($type eq 'bigint') {
        $v = pick(@BIGINTS, @RUN_IDS, @PIPELINE_IDS);
    } elsif ($type =~ /^(integer|smallint)$/) {
        $v = pick(@INTS);
    } elsif ($type eq 'boolean') {
        $v = pick(@BOOLS);
    } elsif ($type eq 'interval') {
        $v = pick(@INTERVALS);
    } elsif ($type =~ /^(jsonb|json)$/) {
        $v = rand() < 0.3 ? a_spec() : pick(@JSONS);
    } elsif ($type =~ /^timestamp|^date$/) {
        $v = pick(@TIMES);
    } elsif ($type =~ /^(numeric|double precision|real)$/) {
        $v = pick('NaN', 'Infinity', '-Infinity', '0', '-0', '1e308', '1e-308');
    } elsif ($type =~ /^(oid|regrole|regproc|regtype)$/) {
        $v = pick('0', '1259', '4294967295', '-');
    } elsif ($type eq 'internal') {
        return 'NULL::internal';
    } else {
        $v = pick(@TEXTS);
    }
    return lit($v) . "::$type";
}

# ---------------------------------------------------------------- the API
my $funcs = $su->selectall_arrayref(q{
    SELECT p.proname, p.prokind, p.pronargdefaults,
           ARRAY(SELECT pg_catalog.format_type(t, NULL) FROM unnest(p.proargtypes) t) AS types,
           ARRAY(SELECT nullif(m.name, '')
                   FROM unnest(coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs])),
                               coalesce(p.proargnames, array_fill(''::text, ARRAY[p.pronargs])))
                        WITH ORDINALITY AS m(mode, name, i)
                  WHERE m.mode IN ('i', 'b', 'v')
                  ORDER BY m.i) AS names
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'pipeline'::regnamespace
     ORDER BY p.proname, p.oid}, { Slice => {} });
my @API = map { { name => $_->{proname}, kind => $_->{prokind}, types => $_->{types},
                  names => $_->{names}, ndef => $_->{pronargdefaults} } } @$funcs;
ok(scalar(@API) >= 30, scalar(@API) . ' functions and procedures in schema pipeline')
  or diag(join(', ', map { $_->{name} } @API));

# a_call builds the SQL of one call of function $f
sub a_call {
    my ($f) = @_;
    my @types = @{ $f->{types} };
    my @names = @{ $f->{names} };
    my $nargs = @types;
    my $required = $nargs - $f->{ndef};
    my $args;
    my $r = rand();
    if (rand() < 0.4 && grep({ defined $_ && $_ eq 'source' } @names)) {
        # a plausible definition (create_pipeline, alter_pipeline and the
        # like), so that calls also succeed and later calls have pipelines
        # to work on, with now and then one argument drawn at random
        my %plausible = (name => lit(pick(map({ "fz_$_" } 0 .. 11), @PIPELINE_NAMES)),
            source => lit(pick('fz.t', 'fz.v', 'fz.pt', 'fz.mv', 'fz.d', 'fz.inf', 'ot.t')) . '::regclass',
            target => lit('fz.tg_' . int(rand(12))), unique_key => lit(pick('{id}', '{id}', '{k}')) . '::text[]',
            incremental_column => lit(pick('id', 'ts')), mode => lit(pick('merge', 'merge', 'full', 'append')));
        $plausible{delete_column} = lit('del') if rand() < 0.2;
        $plausible{lookback} = lit(pick(@INTERVALS)) . '::interval' if rand() < 0.1;
        $plausible{depends_on} = a_value('depends_on', 'text[]') if rand() < 0.1;
        $plausible{schedule} = lit(pick(@SCHEDULES)) if rand() < 0.1;
        delete $plausible{incremental_column} if rand() < 0.2;
        # the required arguments, and each of the others now and then
        my %required = map { $_ => 1 } grep { defined } @names[0 .. $required - 1];
        my %have = map { $_ => 1 } grep { defined } @names;
        my @use = grep { $have{$_} && ($required{$_} || rand() < 0.5) } sort keys %plausible;
        if (rand() < 0.5) {
            my $i = int(rand($nargs));
            my $n = $names[$i];
            @use = grep { $_ ne $n } @use;
            $plausible{$n} = a_value($n, $types[$i]);
            push @use, $n;
        }
        $args = join(', ', map { qq{"$_" => $plausible{$_}} } @use);
    } elsif ($r < 0.55 && !grep { !defined $_ } @names) {
        # named notation: the required arguments (now and then one missing)
        # and a random subset of the others, in random order
        my @idx = grep { $_ < $required || rand() < 0.4 } 0 .. $nargs - 1;
        @idx = grep { rand() > 0.1 } @idx if rand() < 0.1;
        @idx = sort { rand() <=> 0.5 } @idx;
        $args = join(', ', map { qq{"$names[$_]" => } . a_value($names[$_], $types[$_]) } @idx);
    } else {
        my $n = $r < 0.9 ? $required + int(rand($nargs - $required + 1)) : int(rand($nargs + 2));
        $args = join(', ', map { a_value($_ < $nargs ? $names[$_] : undef,
                                         $_ < $nargs ? $types[$_] : 'text') } 0 .. $n - 1);
    }
    my $call = "pipeline.$f->{name}($args)";
    return "CALL $call" if $f->{kind} eq 'p';
    return "SELECT $call OVER () FROM (VALUES (1), (2)) AS v(x)" if $f->{kind} eq 'w';
    return "SELECT $call FROM (VALUES (1), (2)) AS v(x)" if $f->{kind} eq 'a';
    return "SELECT * FROM $call";
}

# ---------------------------------------------------------------- state
my $STATE_SQL = q{
    SELECT concat_ws(E'\n--\n',  -- every part there, so that they split by position
        coalesce((SELECT string_agg(p::text, E'\n' ORDER BY pipeline_id) FROM pipeline.pipeline p), ''),
        coalesce((SELECT string_agg(w::text, E'\n' ORDER BY pipeline_id) FROM pipeline.watermark w), ''),
        coalesce((SELECT string_agg(d::text, E'\n' ORDER BY pipeline_id, upstream_id) FROM pipeline.dependency d), ''),
        coalesce((SELECT string_agg(q::text, E'\n' ORDER BY queue_id) FROM pipeline.run_queue q), ''),
        coalesce((SELECT string_agg(j::text, E'\n' ORDER BY jobid) FROM cron.job j), ''))};
sub state_now { return $su->selectrow_array($STATE_SQL) // ''; }

sub refresh_pools {
    @PIPELINE_NAMES = map { $_->[0] } @{ $su->selectall_arrayref(q{SELECT name FROM pipeline.pipeline}) };
    @PIPELINE_IDS = map { $_->[0] } @{ $su->selectall_arrayref(q{SELECT pipeline_id FROM pipeline.pipeline}) };
    @RUN_IDS = map { $_->[0] } @{ $su->selectall_arrayref(
        q{SELECT run_id FROM pipeline.run_history ORDER BY random() LIMIT 30}) };
}

# first line of a state difference, for the diagnostics
sub first_diff {
    my ($a, $b) = @_;
    my @a = split /\n/, $a;
    my @b = split /\n/, $b;
    for (my $i = 0; $i < @a || $i < @b; $i++) {
        my ($x, $y) = ($a[$i] // '(none)', $b[$i] // '(none)');
        return "before: $x\n   after: $y" if $x ne $y;
    }
    return '(same)';
}

maintain();
refresh_pools();
my $others_before = $su->selectrow_array(q{
    SELECT string_agg(p::text || ' ' || w::text, E'\n' ORDER BY p.pipeline_id)
      FROM pipeline.pipeline p JOIN pipeline.watermark w USING (pipeline_id)
     WHERE p.owner = 'other'::regrole});
my $owners_before = $su->selectall_hashref(
    q{SELECT pipeline_id, owner::text AS owner FROM pipeline.pipeline}, 'pipeline_id');
ok($others_before =~ /other_merge/ && $others_before =~ /other_full/, 'the other role owns two pipelines');

# the views of schema pipeline the fuzzing role may read must answer it,
# whatever the fuzz did to the pipelines (monitoring never fails as a whole)
my @VIEWS = map { $_->[0] } @{ $su->selectall_arrayref(q{
    SELECT c.oid::regclass::text FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'pipeline'::regnamespace AND c.relkind = 'v'
       AND pg_catalog.has_table_privilege('fuzzer', c.oid, 'SELECT')
     ORDER BY 1}) };
my %view_failures;
sub read_views {
    my ($when) = @_;
    for my $v (@VIEWS) {
        next if defined $fz->do("SELECT * FROM $v");
        my $e = ($fz->state // '') . ' ' . ($fz->errstr // '');
        $e =~ s/\n.*//s;
        push @{ $view_failures{$v} }, "$when: $e";
    }
}

# ---------------------------------------------------------------- the fuzz
my %stats;    # name => { calls, ok, states => {..}, problems => [...] }
my $state = state_now();
my $started = time();
my $broken_sessions = 0;
my @weights = map { $_->{name} =~ /^(create_pipeline|alter_pipeline|apply|run|run_batched|reset|drop_pipeline)$/ ? 3 : 1 } @API;
my @deck = map { ($API[$_]) x $weights[$_] } 0 .. $#API;

# every function gets a few calls first, then the deck decides
my @order = ((@API) x 20);
push @order, $deck[ int(rand(@deck)) ] while @order < $CALLS;
@order = map { $_->[1] } sort { $a->[0] <=> $b->[0] } map { [ rand(), $_ ] } @order;

for (my $i = 0; $i < @order; $i++) {
    if ($i > 0 && $i % 250 == 0) {
        read_views("after $i calls");
        maintain();
        refresh_pools();
        read_views("after $i calls and a run of every own pipeline");
        $state = state_now();
        ok(postmaster_alive($pm_pid), "postmaster alive after $i calls") or last;
    }
    refresh_pools() if $i % 40 == 0;
    my $f = $order[$i];
    my $st = $stats{ $f->{name} } //= { calls => 0, ok => 0, states => {}, problems => [] };
    my $call = a_call($f);
    my $in_tx = rand() < 0.33;
    my @problem;

    $fz->do('BEGIN') if $in_tx;
    my $ok = defined $fz->do($call);
    my $sqlstate = $ok ? '' : ($fz->state // '');
    my $errmsg = $ok ? '' : ($fz->errstr // '');
    $st->{calls}++;
    $st->{ok}++ if $ok;
    $st->{states}{$sqlstate}++ unless $ok;
    diag("call #$i" . ($in_tx ? ' (in a transaction)' : '') . ": $call\n  $sqlstate: $errmsg")
      if $ENV{PP_FUZZ_SHOW} && $sqlstate =~ /^(?:$ENV{PP_FUZZ_SHOW})$/;
    push @problem, "internal error $sqlstate: $errmsg" if $sqlstate =~ /^XX/;
    push @problem, "FATAL or lost connection ($sqlstate): $errmsg"
      if !$ok && ($sqlstate =~ /^(08|57P)/ || !$fz->ping);

    my $rolled_back = !$ok;
    if ($in_tx) {
        my $end = ($ok && rand() < 0.5) ? 'COMMIT' : 'ROLLBACK';
        $rolled_back = 1 if $end eq 'ROLLBACK';
        push @problem, "$end after the call failed: " . ($fz->errstr // '?') . ' (' . ($fz->state // '') . ')'
          unless defined $fz->do($end);
    } elsif (!$ok) {
        push @problem, 'ROLLBACK after the error failed: ' . ($fz->errstr // '?') . ' (' . ($fz->state // '') . ')'
          unless defined $fz->do('ROLLBACK');
    }
    my @probe = $fz->selectrow_array(q{SELECT 1, current_user, current_setting('search_path'), pg_catalog.txid_current_if_assigned() IS NULL});
    if (!@probe || $probe[0] ne '1') {
        push @problem, 'SELECT 1 does not answer: ' . ($fz->errstr // '?') . ' (' . ($fz->state // '') . ')';
    } else {
        push @problem, "current_user is $probe[1] after the call" if $probe[1] ne 'fuzzer';
        push @problem, "search_path is '$probe[2]' after the call" if $probe[2] ne $session_path;
        push @problem, 'a transaction is still open after the call' if $probe[3] ne '1';
    }
    my $after = state_now();
    # a batched run or a backfill commits each batch: when a later batch
    # fails, the batches before it stay, with their watermark and queued
    # runs; the definitions must not change
    my $committed_batches = !$ok && !$in_tx && $f->{name} =~ /^(run_batched|backfill)$/;
    if ($committed_batches) {
        my @b = split /\n--\n/, $state, -1;
        my @a = split /\n--\n/, $after, -1;
        push @problem, "a refused batched call ($sqlstate) changed a definition or dependency:\n   "
          . first_diff($b[0] . "\n" . ($b[2] // ''), $a[0] . "\n" . ($a[2] // ''))
          if ($b[0] // '') ne ($a[0] // '') || ($b[2] // '') ne ($a[2] // '');
    } elsif ($rolled_back && $after ne $state) {
        push @problem, ($ok ? 'a rolled back call' : "a refused call ($sqlstate)")
          . " changed the catalog:\n   " . first_diff($state, $after);
    }
    $state = $after;

    if (@problem) {
        push @{ $st->{problems} }, "call #$i: $call\n  " . join("\n  ", @problem)
          if @{ $st->{problems} } < 5;
        $st->{nproblems}++;
        # a fresh session, so that the next calls are judged on their own
        $broken_sessions++ unless $fz->ping;
        connect_fuzzer();
        unless (postmaster_alive($pm_pid)) {
            fail("the postmaster died at call #$i: $call");
            last;
        }
    }
}
my $elapsed = time() - $started;

# ---------------------------------------------------------------- verdicts
my $total = 0;
$total += $_->{calls} for values %stats;
ok($total >= $CALLS, sprintf('%d calls in %.1f s (%.0f calls/s), seed %d', $total, $elapsed,
    $total / ($elapsed || 1), $seed));
for my $f (sort keys %stats) {
    my $st = $stats{$f};
    my $refused = $st->{calls} - $st->{ok};
    my @top = (sort { $st->{states}{$b} <=> $st->{states}{$a} || $a cmp $b } keys %{ $st->{states} });
    splice(@top, 4) if @top > 4;
    my $states = join(' ', map { "$_ x$st->{states}{$_}" } @top);
    ok(!$st->{nproblems}, "pipeline.$f: $st->{calls} calls, $st->{ok} succeeded, $refused refused"
        . ($states ? " ($states)" : '') . '; no internal error, session usable, nothing changed by refusals')
      or diag(($st->{nproblems} // 0) . " bad calls, first ones:\n" . join("\n", @{ $st->{problems} }));
}
is($broken_sessions, 0, 'no call left the session unusable');
read_views('at the end');
for my $v (@VIEWS) {
    my $f = $view_failures{$v} // [];
    is(scalar(@$f), 0, "$v answers the fuzzing role every time it is read")
      or diag(join("\n", @$f[0 .. ($#$f < 4 ? $#$f : 4)]));
}

ok(postmaster_alive($pm_pid) && (postmaster_pid($node) // 0) == $pm_pid,
   'the postmaster that was started is still running');
my @crashes = crash_lines($node, 0);
is(scalar(@crashes), 0, 'the server log shows no crash')
  or diag(join("\n", @crashes[0 .. ($#crashes < 20 ? $#crashes : 19)]));

is($su->selectrow_array(q{
    SELECT string_agg(name, ', ') FROM pipeline.pipeline p
     WHERE NOT EXISTS (SELECT 1 FROM pipeline.watermark w WHERE w.pipeline_id = p.pipeline_id)}),
   undef, 'every pipeline has its watermark row');
is($su->selectrow_array(q{SELECT count(*) FROM pipeline.run_history WHERE status = 'running'}),
   0, "no run is left 'running'");
my @audit = $su->selectrow_array(q{SELECT valid, entries_checked, problem, detail FROM pipeline.verify_audit()});
ok($audit[0], "verify_audit() is valid ($audit[1] entries)")
  or diag("problem: " . ($audit[2] // '') . ' ' . ($audit[3] // ''));
is($su->selectrow_array(q{
    SELECT string_agg(p::text || ' ' || w::text, E'\n' ORDER BY p.pipeline_id)
      FROM pipeline.pipeline p JOIN pipeline.watermark w USING (pipeline_id)
     WHERE p.owner = 'other'::regrole}),
   $others_before, "the other role's pipelines and watermarks are exactly as they were");
my $owners_after = $su->selectall_hashref(
    q{SELECT pipeline_id, owner::text AS owner FROM pipeline.pipeline}, 'pipeline_id');
my @changed = grep { exists $owners_after->{$_} && $owners_after->{$_}{owner} ne $owners_before->{$_}{owner} }
  keys %$owners_before;
is(scalar(@changed), 0, 'no pipeline changed owner');
is($su->selectrow_array(q{
    SELECT string_agg(name || ':' || owner::text, ', ') FROM pipeline.pipeline
     WHERE owner::text NOT IN ('fuzzer', 'other')}),
   undef, 'every pipeline the fuzz created belongs to the fuzzing role');

$fz->disconnect;
$su->disconnect;
$node->stop;
done_testing();
