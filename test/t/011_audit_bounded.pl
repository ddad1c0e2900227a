# test/t/011_audit_bounded.pl
#
# The audit log is bounded and still verifiable (issue 7, item 8), with the
# launcher preloaded:
#
# - 10,000 refused calls by a role with no privileges, inside a transaction
#   it rolls back, start no background worker at all; the launcher writes
#   the window's first refusal by itself, and the other 9,999 are one entry
#   with their count when the window closes (by hand here, and by the
#   launcher itself once pipeline.audit_refusal_window has passed);
# - in a database the launcher does not serve, the same loop starts one
#   recorder worker and adds one entry; the rest is reported in the server
#   log when the session ends;
# - with pipeline.audit_retention set, the launcher prunes old entries in
#   batches, keeps the anchor, and the chain verifies from it.
#
# Workers are counted from the postmaster's DEBUG1 line "starting background
# worker process".
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_bounded');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_pipeline'
pipeline.databases = 'postgres'
pipeline.check_interval = 1
pipeline.audit_refusal_window = '1h'
max_worker_processes = 16
log_min_messages = debug1
});
$node->start;

sub sql { my ($db, $q) = @_; return $node->safe_psql($db, $q); }

# recorders_started counts the audit recorder workers started since offset
sub recorders_started {
    my ($offset) = @_;
    my $log = slurp_file($node->logfile, $offset);
    my @starts = ($log =~ /starting background worker process "pg_pipeline audit recorder"/g);
    return scalar @starts;
}

sql('postgres', q{
    CREATE DATABASE other;
    CREATE ROLE tab_owner;
    CREATE ROLE intruder LOGIN;
});
for my $db ('postgres', 'other') {
    sql($db, q{
        CREATE EXTENSION pg_pipeline;
        CREATE SCHEMA s AUTHORIZATION tab_owner;
        SET ROLE tab_owner;
        CREATE TABLE s.src (id int PRIMARY KEY, v text);
        SELECT pipeline.create_pipeline('p', 's.src', 's.dst', unique_key => '{id}');
        RESET ROLE;
        -- refuse_many calls somebody else's pipeline n times, as the caller
        CREATE FUNCTION public.refuse_many(n int, action text DEFAULT 'run') RETURNS int
        LANGUAGE plpgsql AS $$
        DECLARE refused int := 0;
        BEGIN
            FOR i IN 1 .. n LOOP
                BEGIN
                    IF action = 'run' THEN
                        PERFORM pipeline.run('p');
                    ELSE
                        PERFORM pipeline.drop_pipeline('p');
                    END IF;
                EXCEPTION WHEN insufficient_privilege THEN
                    refused := refused + 1;
                END;
            END LOOP;
            RETURN refused;
        END $$;
    });
}

# 1. With the launcher: no worker per refusal, two entries in all.
my $offset = -s $node->logfile;
is($node->safe_psql('postgres', q{BEGIN; SELECT public.refuse_many(10000); ROLLBACK;},
        extra_params => ['-U', 'intruder']),
   '10000', 'every one of 10,000 calls is refused with 42501');
ok($node->poll_query_until('postgres', q{
        SELECT count(*) = 1 FROM pipeline.audit_log WHERE role_name = 'intruder'}),
   'the launcher writes the first refusal of the window, although the caller rolled back');
is(sql('postgres', q{SELECT count(*) || ' ' || string_agg(details->>'count', ',')
                       FROM pipeline.audit_log WHERE role_name = 'intruder'}),
   '1 1', 'the other refusals are only counted while the window is open');
is(recorders_started($offset), 0, 'the refusals started no audit recorder worker');
is(sql('postgres', q{SELECT pipeline.flush_audit_refusals()}), '1',
   'closing the window writes one entry');
is(sql('postgres', q{SELECT count(*) || ' ' || sum((details->>'count')::int)
                       FROM pipeline.audit_log WHERE role_name = 'intruder' AND outcome = 'refused'}),
   '2 10000', '10,000 refusals are two audit entries, and their counts add up');

# 2. Without a launcher for the database: one recorder worker, one entry;
# the refusals still only counted are reported when the session ends.
$offset = -s $node->logfile;
is($node->safe_psql('other', q{BEGIN; SELECT public.refuse_many(10000); ROLLBACK;},
        extra_params => ['-U', 'intruder']),
   '10000', 'without a launcher every call is refused too');
is(sql('other', q{SELECT count(*) || ' ' || string_agg(details->>'count', ',')
                    FROM pipeline.audit_log WHERE role_name = 'intruder'}),
   '1 1', 'without a launcher the window\'s first refusal is logged at once, the rest counted');
ok($node->wait_for_log(qr/9999 refused "run" on pipeline p by role "intruder" were not written/, $offset),
   'the refusals still counted at the end of the session are reported in the server log');
is(recorders_started($offset), 1, 'without a launcher 10,000 refusals start one recorder worker');

# 3. The launcher writes a closed window by itself.
sql('postgres', q{ALTER SYSTEM SET pipeline.audit_refusal_window = '1s'; SELECT pg_reload_conf();});
ok($node->poll_query_until('postgres', q{SHOW pipeline.audit_refusal_window}, '1s'),
   'the window is one second now');
$node->safe_psql('postgres', q{SELECT public.refuse_many(100, 'drop')},
    extra_params => ['-U', 'intruder']);
ok($node->poll_query_until('postgres', q{
        SELECT sum((details->>'count')::int) = 100 FROM pipeline.audit_log
         WHERE role_name = 'intruder' AND action = 'drop'}),
   'the launcher writes the counts of a closed window by itself');
is(sql('postgres', q{SELECT valid FROM pipeline.verify_audit()}), 't', 'the chain verifies');

# 4. Retention by the launcher: old entries go, the anchor stays, the chain
# verifies from it, and the prune is an entry of its own.
my $before = sql('postgres', q{SELECT count(*) FROM pipeline.audit_log});
sql('postgres', q{ALTER SYSTEM SET pipeline.audit_retention = '1s'; SELECT pg_reload_conf();});
ok($node->poll_query_until('postgres', q{
        SELECT EXISTS (SELECT 1 FROM pipeline.audit_anchor)
           AND NOT EXISTS (SELECT 1 FROM pipeline.audit_log WHERE role_name = 'intruder')}),
   'the launcher prunes the entries older than pipeline.audit_retention');
sql('postgres', q{ALTER SYSTEM SET pipeline.audit_retention = 0; SELECT pg_reload_conf();});
ok($node->poll_query_until('postgres', q{SHOW pipeline.audit_retention}, '0'),
   'retention is off again');
is(sql('postgres', q{SELECT valid || ' ' || (anchor_seq = (SELECT max(seq) FROM pipeline.audit_anchor))
                       FROM pipeline.verify_audit()}),
   'true true', 'the chain verifies from the latest anchor');
is(sql('postgres', q{SELECT count(*) > 0 FROM pipeline.audit_log
                      WHERE action = 'audit_prune' AND details->>'triggered_by' = 'launcher'}),
   't', 'the launcher\'s prune is an audit entry');
ok(sql('postgres', q{SELECT count(*) FROM pipeline.audit_log}) < $before,
   'the log is smaller than before the prune');
is($node->psql('postgres', q{DELETE FROM pipeline.audit_log}), 3,
   'DELETE is still refused, even for a superuser');

$node->stop;
done_testing();
