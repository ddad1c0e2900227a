# test/t/016_parallel_one_scan.pl
#
# One scan of the source for two partitions of a part (docs/parallel.md,
# "One scan for two partitions"; src/engine/partition_rows.c). The server
# preloads auto_explain, which logs the plan of every statement the part
# workers run; the test reads the plans of their load statements from the
# log. Pipelines with parallel_workers => 2, the first three from one
# source (several versions per key, a NULL key, rows past later runs'
# windows):
#   four    4 hash partitions: each part's first scan keeps its second
#           partition's rows, and its second statement reads them, sorted,
#           without a scan nor a sort of its own;
#   six     6 list partitions: three per part, the third scanned alone;
#   checked 4 hash partitions and a row check that sends rows to
#           quarantine (checked after de-duplication, as the statement
#           that reads kept rows does on them);
#   people  4 hash partitions from a source with forgotten subjects whose
#           rows arrive again: the statement that reads kept rows passes
#           them through the erasure gate, armed under its partition's lock.
# The source has an index on the incremental column, and the server runs
# with enable_seqscan off at first, so that the planner prefers the index:
#   the initial load still shares its scans (its window has no lower
#           bound: it reads the source whole, whatever the planner thinks);
#   a merge (its window has a lower bound) leaves each partition to its own
#           index scan;
#   with the index dropped and enable_seqscan back on, a merge shares them.
# Each run (then one that finds nothing new) must leave the target equal to
# a plain-SQL reference and count what the same pipeline run serially into
# a copy of its target counts.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('parallel_one_scan');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_pipeline, auto_explain'
max_worker_processes = 16
max_prepared_transactions = 8
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
auto_explain.log_analyze = on
auto_explain.log_timing = off
auto_explain.log_level = log
});
$node->start;

sub sql { return $node->safe_psql('postgres', shift); }

sql(q{
    CREATE EXTENSION pg_pipeline;
    CREATE SCHEMA s;
    CREATE TABLE s.src (id int, grp text NOT NULL, v int NOT NULL, ts bigint NOT NULL);
    -- 3 versions of keys 1..400 (the newest by ts wins), one NULL key
    -- (every 97th has a negative v, which the row check of 'checked' sends to quarantine)
    INSERT INTO s.src SELECT 1 + g % 400, (ARRAY['a','b','c','d','e','f'])[1 + (g % 400) % 6],
                             CASE WHEN g % 97 = 0 THEN -g ELSE g END, g / 3
      FROM generate_series(1, 1200) AS g;
    INSERT INTO s.src VALUES (NULL, 'a', 0, 5);
    CREATE INDEX src_ts ON s.src (ts);
    CREATE FUNCTION s.target(name text, by_list boolean) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF by_list THEN
            EXECUTE format('CREATE TABLE s.%I (id int NOT NULL, grp text NOT NULL, v int, ts bigint,
                            PRIMARY KEY (grp, id)) PARTITION BY LIST (grp)', name);
            FOR i IN 1..6 LOOP
                EXECUTE format('CREATE TABLE s.%I PARTITION OF s.%I FOR VALUES IN (%L)',
                               name || '_' || i, name, (ARRAY['a','b','c','d','e','f'])[i]);
            END LOOP;
        ELSE
            EXECUTE format('CREATE TABLE s.%I (id int NOT NULL PRIMARY KEY, grp text NOT NULL, v int, ts bigint)
                            PARTITION BY HASH (id)', name);
            FOR i IN 0..3 LOOP
                EXECUTE format('CREATE TABLE s.%I PARTITION OF s.%I FOR VALUES WITH (MODULUS 4, REMAINDER %s)',
                               name || '_' || i, name, i);
            END LOOP;
        END IF;
    END $$;
    SELECT s.target('four', false), s.target('four_serial', false),
           s.target('six', true), s.target('six_serial', true),
           s.target('checked', false), s.target('checked_serial', false);
    SELECT pipeline.create_pipeline(n, 's.src', 's.' || n, unique_key => k, incremental_column => 'ts',
                                    partition_column => c, create_target => false,
                                    parallel_workers => CASE WHEN n LIKE '%_serial' THEN 1 ELSE 2 END)
      FROM (VALUES ('four', '{id}'::text[], 'id'), ('four_serial', '{id}', 'id'),
                   ('six', '{grp,id}', 'grp'), ('six_serial', '{grp,id}', 'grp'),
                   ('checked', '{id}', 'id'), ('checked_serial', '{id}', 'id')) AS p (n, k, c);
    SELECT pipeline.add_check(n, 'v_positive', 'expression', '{"sql": "v > 0"}', 'quarantine')
      FROM unnest(ARRAY['checked', 'checked_serial']) AS n;
});

# load_plans: the plans, logged since offset, of the statements that read a
# part's partitions from the source (the parts' loads; not the leader's count)
sub load_plans {
    my ($offset) = @_;
    my $log = slurp_file($node->logfile, $offset);
    return grep { /Query Text: (SELECT s\.|MERGE INTO)/ && /pipeline\._partition_rows\(|satisfies_hash_partition\(/ }
      split /(?=^\S.*LOG:  duration: )/m, $log;
}

# same: the target equals the plain-SQL reference at the pipeline's watermark
# (the newest version of each key; for 'checked', whose row check sends a
# key's newest version to quarantine and keeps what the target had, its
# serial twin's target), and its last run's counts equal its serial twin's
sub same {
    my ($name, $what) = @_;
    my $ref = $name eq 'checked' ? 'TABLE s.checked_serial' : qq{
        SELECT DISTINCT ON (id) id, grp, v, ts FROM s.src
         WHERE id IS NOT NULL AND ts <= (SELECT watermark::bigint FROM pipeline.pipelines WHERE name = '$name')
         ORDER BY id, ts DESC, v DESC};
    is(sql(qq{
        WITH ref AS ($ref)
        SELECT (SELECT count(*) FROM ref), (SELECT count(*) FROM (TABLE ref EXCEPT TABLE s.$name) d),
               (SELECT count(*) FROM (TABLE s.$name EXCEPT TABLE ref) d)}),
       sql(qq{SELECT count(*) FROM s.$name}) . '|0|0', "$name, $what: the target is the reference");
    my $counts = q{SELECT concat_ws(' ', status, rows_read, rows_inserted, rows_updated, rows_unchanged,
                                    rows_rejected, rows_quarantined)
                     FROM pipeline.runs WHERE pipeline_name = '%s' ORDER BY run_id DESC LIMIT 1};
    is(sql(sprintf($counts, $name)), sql(sprintf($counts, "${name}_serial")),
       "$name, $what: the counts are the serial run's");
}

# run_all: runs every pipeline, each alone in its statement (as a parallel run must be)
sub run_all { sql("SELECT pipeline.run('$_')") for qw(four four_serial six six_serial checked checked_serial); }
# own_scans: how many of plans read the source by a scan of their own
sub own_scans {
    return scalar(grep { /(Seq Scan|Bitmap Heap Scan|Index Scan using src_ts|Index Only Scan using src_ts) on src s/ } @_);
}

sql(q{ALTER SYSTEM SET enable_seqscan = off; SELECT pg_reload_conf();});
my $offset = -s $node->logfile;
run_all();
same($_, 'initial load') for qw(four six checked);
my @plans = load_plans($offset);

# the load plans of a pipeline into hash partitions, told apart by their parent
sub plans_of {
    my ($parent) = @_;
    my $oid = sql(qq{SELECT 's.$parent'::regclass::oid});
    return grep { /satisfies_hash_partition\('$oid'::oid/ } @plans;
}
# shares: the plans of a hash-partitioned pipeline read the source once per part
sub shares {
    my ($name, $what) = @_;
    my @p = plans_of($name);
    is(scalar(@p), 4, "$name, $what: one load statement per partition");
    is(scalar(grep { /Keeps: \(satisfies_hash_partition/ } @p), 2,
       "$name, $what: the first statement of each part keeps its next partition's rows");
    is(scalar(grep { /Reads: the rows the previous statement's scan kept/ } @p), 2,
       "$name, $what: the second statement of each part reads them");
    is(own_scans(@p), 0, "$name, $what: no statement scans the source on its own");
    return @p;
}
my @four_plans = shares('four', 'initial load, the index preferred');
is(scalar(grep { /Sort Method/ } @four_plans), 2,
   'four: only the scanning statements sort; the second of each part reads its rows sorted');
shares('checked', 'initial load');
my @six_plans = grep { !/satisfies_hash_partition/ } @plans;
is(scalar(@six_plans), 6, 'six: one load statement per partition');
like(join('', @six_plans), qr/PipelinePartitionRows/, 'six: list partitions share scans too');
is(own_scans(@six_plans), 2, 'six: the third partition of each part scans alone');

# add_batch: new versions of some keys, new keys, a NULL key, past the watermarks
sub add_batch {
    my ($from) = @_;
    sql(qq{INSERT INTO s.src SELECT 1 + g % 450, (ARRAY['a','b','c','d','e','f'])[1 + (g % 450) % 6], -g - $from, $from + g
             FROM generate_series(1, 300) AS g;
           INSERT INTO s.src VALUES (NULL, 'b', 1, $from + 100)});
}

# merges into filled partitions, the index preferred
add_batch(1000);
$offset = -s $node->logfile;
run_all();
same($_, 'merge by the index') for qw(four six checked);
@plans = load_plans($offset);
for my $name (qw(four checked)) {
    my @p = plans_of($name);
    is(scalar(grep { /PipelinePartitionRows/ } @p), 0,
       "$name, merge: with a lower bound, the index the planner prefers serves each partition");
    is(own_scans(@p), 4, "$name, merge: four scans of the index");
}

# merges into filled partitions, the source scanned whole
sql(q{ALTER SYSTEM RESET enable_seqscan; SELECT pg_reload_conf(); DROP INDEX s.src_ts;});
add_batch(2000);
$offset = -s $node->logfile;
run_all();
same($_, 'merge') for qw(four six checked);
@plans = load_plans($offset);
shares($_, 'merge') for qw(four checked);

run_all();

# A source that holds forgotten subjects: the erasure gate skips their rows
# when they arrive again. The statement that reads kept rows evaluates the
# gate on them, armed with the tombstones it read under its partition's lock.
sql(q{
    CREATE TABLE s.people_src (id int, name text NOT NULL, ts bigint NOT NULL);
    INSERT INTO s.people_src SELECT 1 + g % 300, 'person ' || g, g FROM generate_series(1, 900) AS g;
    CREATE FUNCTION s.people_target(name text) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        EXECUTE format('CREATE TABLE s.%I (id int NOT NULL PRIMARY KEY, name text NOT NULL, ts bigint)
                        PARTITION BY HASH (id)', name);
        FOR i IN 0..3 LOOP
            EXECUTE format('CREATE TABLE s.%I PARTITION OF s.%I FOR VALUES WITH (MODULUS 4, REMAINDER %s)',
                           name || '_' || i, name, i);
        END LOOP;
    END $$;
    SELECT s.people_target('people'), s.people_target('people_serial');
    SELECT pipeline.create_pipeline(n, 's.people_src', 's.' || n, unique_key => '{id}',
                                    incremental_column => 'ts', partition_column => 'id',
                                    create_target => false,
                                    parallel_workers => CASE WHEN n = 'people' THEN 2 ELSE 1 END)
      FROM unnest(ARRAY['people', 'people_serial']) AS n;
    SELECT pipeline.declare_subject('s.people_src', 'id', 'person');
});
sql("SELECT pipeline.run('$_')") for qw(people people_serial);
sql(q{SELECT count(*) FROM pipeline.forget('person', '7'); SELECT count(*) FROM pipeline.forget('person', '12');});
# their rows arrive again, with new rows of others
sql(q{INSERT INTO s.people_src SELECT 1 + g % 350, 'again ' || g, 1000 + g FROM generate_series(1, 700) AS g});
$offset = -s $node->logfile;
sql("SELECT pipeline.run('$_')") for qw(people people_serial);
@plans = load_plans($offset);
my @people_plans = shares('people', 'forgotten subjects');
is(scalar(grep { /Reads: [^\n]*\n\s*Filter: [^\n]*pipeline\._unforgotten/ } @people_plans), 2,
   'people: the statements that read kept rows pass them through the erasure gate');
is(sql(q{SELECT count(*) FROM ((TABLE s.people EXCEPT TABLE s.people_serial)
                                UNION ALL (TABLE s.people_serial EXCEPT TABLE s.people)) d}), '0',
   'people: the target is its serial twin\'s');
is(sql(q{SELECT count(*) FROM s.people WHERE id IN (7, 12)}), '0', 'people: the forgotten did not come back');
my $forgotten = q{SELECT concat_ws(' ', status, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_forgotten)
                    FROM pipeline.runs WHERE pipeline_name = '%s' ORDER BY run_id DESC LIMIT 1};
is(sql(sprintf($forgotten, 'people')), sql(sprintf($forgotten, 'people_serial')),
   'people: the counts are the serial run\'s, the forgotten rows included');
like(sql(sprintf($forgotten, 'people')), qr/ [1-9]\d*$/, 'people: the gate skipped the returning rows');
is(sql(q{SELECT count(*) FROM pg_prepared_xacts}), '0', 'nothing is left prepared');
unlike(slurp_file($node->logfile), qr/temporary file leak|lost the rows|cannot read the rows/,
       'no kept rows were lost or leaked');

$node->stop;
done_testing();
