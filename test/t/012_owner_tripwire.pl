# test/t/012_owner_tripwire.pl
#
# The worker path of the owner tripwire (test/pgtap/11_owner_tripwire.sql
# covers the SQL API): background workers connect as the bootstrap
# superuser, yet every owner hook a worker's run reaches (source view,
# domain CHECK on the incremental column, target DEFAULT, trigger, index
# expression, cast, rule) runs as the pipeline's owner, in a
# security-restricted operation, with search_path pinned. Runs are started
# by pipeline.trigger (queued for a worker) and by an upstream pipeline's
# new rows; the launcher's freshness checks run too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tripwire');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_pipeline'
pipeline.databases = 'postgres'
pipeline.max_workers = 2
pipeline.check_interval = 1
max_worker_processes = 16
});
$node->start;

sub sql { return $node->safe_psql('postgres', shift); }

my $setup = slurp_file(__FILE__ =~ s{t/012_owner_tripwire\.pl$}{sql/tripwire.sql}r);
sql(q{CREATE EXTENSION pg_pipeline; CREATE ROLE tw_owner NOLOGIN;
      GRANT CREATE ON DATABASE postgres TO tw_owner;});
$node->safe_psql('postgres', $setup, extra_params => ['-v', 'owner=tw_owner']);

# An upstream pipeline whose new rows start 'tw merge' through a worker: it
# loads tw.src itself (tw.src_v reads it), so the dependency is inferred.
sql(q{CREATE TABLE public.feed (id integer PRIMARY KEY, seq bigint NOT NULL, color tw.color);
      ALTER TABLE public.feed OWNER TO tw_owner;
      SET ROLE tw_owner;
      SELECT pipeline.create_pipeline('tw feed', 'public.feed', 'tw.src', unique_key => '{id}',
                                      incremental_column => 'seq', create_target => false,
                                      freshness => '1 hour');
      RESET ROLE;
      ALTER TABLE tw.src ADD PRIMARY KEY (id);});

sub wait_idle {
    return $node->poll_query_until('postgres', q{
        SELECT NOT EXISTS (SELECT 1 FROM pipeline.queue)
           AND NOT EXISTS (SELECT 1 FROM pipeline.runs WHERE status = 'running')});
}

sql(q{INSERT INTO public.feed VALUES (1, 10, 'red'), (2, 20, 'green')});
# run the feed as the owner: its new rows wake 'tw merge' in a worker
sql(q{SET ROLE tw_owner; SELECT pipeline.run('tw feed');});
ok(wait_idle(), 'the downstream run in a worker settles');
is(sql(q{SELECT count(*) FROM tw.tgt}), '2', 'a worker loaded the target through every hook');
is(sql(q{SELECT string_agg(DISTINCT triggered_by, ',') FROM pipeline.runs
          WHERE pipeline_name = 'tw merge' AND status = 'succeeded'}),
   'upstream', 'the run was made by a worker');

sql(q{SELECT pipeline.trigger('tw append')});
ok(wait_idle(), 'a triggered run in a worker settles');
is(sql(q{SELECT count(*) FROM tw.appended}), '2', 'a worker loaded the append target (rule, cast)');

# a second wave: the watermark's conversion goes through the domain
sql(q{SET ROLE tw_owner; INSERT INTO public.feed VALUES (3, 30, 'red');});
sql(q{SET ROLE tw_owner; SELECT pipeline.run('tw feed');});
ok(wait_idle(), 'the second wave settles');
sql(q{SELECT pipeline.trigger('tw append')});
ok(wait_idle(), 'the second triggered run settles');
sleep 2;    # two launcher passes of freshness and timeliness checks

is(sql(q{SELECT count(*) FROM pipeline.runs WHERE status = 'failed'}), '0', 'no run failed');
is(sql(q{SELECT coalesce(string_agg(hook || ' as ' || who || (CASE WHEN restricted THEN '' ELSE ' unrestricted' END)
                                    || ' path ' || path, '; '), 'none')
           FROM tw.log WHERE who <> 'tw_owner' OR NOT restricted OR path <> 'pg_catalog, pg_temp'}),
   'none', 'every hook a worker reached ran as the owner, restricted, search_path pinned');
is(sql(q{SELECT string_agg(h, ',' ORDER BY h) FROM unnest(ARRAY['cast', 'default', 'domain', 'index',
                                                                  'rule', 'trigger', 'view', 'check_expression',
                                                                  'check_query']) h
          WHERE EXISTS (SELECT 1 FROM tw.log WHERE hook = h)}),
   'cast,check_expression,check_query,default,domain,index,rule,trigger,view', 'every hook fired in a worker');

$node->stop;
done_testing();
