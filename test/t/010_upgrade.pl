# test/t/010_upgrade.pl
#
# ALTER EXTENSION pg_pipeline UPDATE from every older version gives the
# catalog of a fresh install, and keeps what the old version recorded. For
# each version with an install script (0.1.0, frozen): install it, register
# pipelines (a merge, an append, a chain through a view), run them (a
# success, a failure, a run with nothing new), drop one, leaving history,
# lineage, config versions and audit entries; then update to the default
# version and check that
#   - the extension's catalog (every member object: tables and their
#     columns, constraints, indexes, views, functions, triggers, policies,
#     sequences, grants, row-level security, config-dump registrations) is
#     identical to that of a fresh CREATE EXTENSION in another database;
#   - the history, lineage and audit entries are all still there, unchanged;
#   - verify_audit() passes, and the old pipelines still run.
# The old version runs on an installation of its own, built from its release
# commit by test/upgrade/old-install.sh (scripts/test.sh passes where, in
# PP_OLD_INSTALLS); the cluster is then restarted on the system's
# installation, as after a package upgrade, and updated there (before the
# update, the new library refuses the old catalog with 55000 and a hint to
# update, and changes nothing: src/catalog/catalog_version.c). Every upgrade
# script carries the \echo ... \quit guard.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $old_installs = $ENV{PP_OLD_INSTALLS}
  or BAIL_OUT('PP_OLD_INSTALLS is not set: run test/upgrade/old-install.sh DIR and set it to DIR '
              . '(scripts/test.sh does both)');
my $system = `pg_config --bindir`;
chomp $system;
$system =~ s{/bin$}{};
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $control = slurp_file("$sharedir/extension/pg_pipeline.control");
my ($default) = $control =~ /default_version\s*=\s*'([^']+)'/;
my @older = map { (split ' ')[0] } grep { !/^#/ && /\S/ } split /\n/, slurp_file(
    (__FILE__ =~ s{t/010_upgrade\.pl$}{upgrade/versions}r));
ok(scalar(@older) >= 1, "older versions to upgrade from: @older (default $default)");

for my $script (glob("$sharedir/extension/pg_pipeline--*--*.sql")) {
    like(slurp_file($script), qr/^\\echo .*\\quit$/m, "$script carries the \\echo ... \\quit guard");
}

# describe: one line per property of every object that belongs to the
# extension, in a form that does not depend on OIDs or creation order
my $describe = q{
WITH members AS (
    SELECT d.classid, d.objid FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_pipeline')
       AND d.deptype = 'e'),
rels AS (SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT line FROM (
    SELECT 'object ' || pg_describe_object(classid, objid, 0) AS line FROM members
    UNION ALL
    SELECT format('relation %s kind %s rls %s force %s options %s acl %s', c.oid::regclass, c.relkind,
                  c.relrowsecurity, c.relforcerowsecurity, c.reloptions, c.relacl) FROM rels c
    UNION ALL
    SELECT format('column %s.%s #%s %s notnull %s default %s acl %s', c.oid::regclass, a.attname,
                  row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), a.attacl)
      FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    UNION ALL
    SELECT format('constraint %s %s: %s', con.conrelid::regclass, con.conname, pg_get_constraintdef(con.oid))
      FROM pg_constraint con JOIN rels c ON c.oid = con.conrelid
    UNION ALL
    SELECT format('index %s', regexp_replace(pg_get_indexdef(i.indexrelid), ' USING ', ' USING '))
      FROM pg_index i JOIN rels c ON c.oid = i.indrelid
    UNION ALL
    SELECT format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM rels c WHERE c.relkind = 'v'
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid)) FROM pg_trigger t JOIN rels c ON c.oid = t.tgrelid
     WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('policy %s %s %s %s using %s check %s', pol.polrelid::regclass, pol.polname, pol.polcmd,
                  pol.polroles::regrole[], pg_get_expr(pol.polqual, pol.polrelid),
                  pg_get_expr(pol.polwithcheck, pol.polrelid))
      FROM pg_policy pol JOIN rels c ON c.oid = pol.polrelid
    UNION ALL
    SELECT format('function %s acl %s: %s', p.oid::regprocedure, p.proacl, pg_get_functiondef(p.oid))
      FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
    UNION ALL
    SELECT format('comment %s: %s', pg_describe_object(ds.classoid, ds.objoid, ds.objsubid), ds.description)
      FROM pg_description ds JOIN members m ON m.classid = ds.classoid AND m.objid = ds.objoid
    UNION ALL
    SELECT format('event trigger %s on %s tags %s runs %s', e.evtname, e.evtevent, e.evttags, e.evtfoid::regproc)
      FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
    UNION ALL
    SELECT format('config dump %s where %s', cfg::regclass, cond)
      FROM pg_extension x, unnest(x.extconfig, x.extcondition) AS u (cfg, cond)
     WHERE x.extname = 'pg_pipeline'
    UNION ALL
    SELECT format('schema %s acl %s', n.nspname, n.nspacl) FROM pg_namespace n WHERE n.nspname = 'pipeline'
) l ORDER BY line};

# the state an old version leaves: counts and contents that must survive
my $kept = q{
SELECT (SELECT count(*) || ' runs ' || string_agg(run_id || ':' || pipeline_name || ':' || status || ':'
                || rows_inserted || ':' || coalesce(error_sqlstate, '-'), ',' ORDER BY run_id)
          FROM pipeline.run_history)
    || ' | ' || (SELECT count(*) || ' audit ' || md5(string_agg(seq || ':' || encode(hash, 'hex'), ',' ORDER BY seq))
                   FROM pipeline.audit_log)
    || ' | ' || (SELECT count(*) || ' versions' FROM pipeline.pipeline_versions)
    || ' | ' || (SELECT count(*) || ' edges' FROM pipeline.lineage_edge)
    || ' | ' || (SELECT count(*) || ' column edges' FROM pipeline.lineage_column_edge)
    || ' | ' || (SELECT count(*) || ' run io' FROM pipeline.run_io)
    || ' | ' || (SELECT string_agg(name || '=' || coalesce(w.value, '-'), ',' ORDER BY name)
                   FROM pipeline.pipeline p LEFT JOIN pipeline.watermark w USING (pipeline_id))};

# the catalog of a fresh install, on the system's (new) installation
my $new = PostgreSQL::Test::Cluster->new('fresh');
$new->init;
$new->start;
$new->safe_psql('postgres', 'CREATE EXTENSION pg_pipeline');
my $fresh = $new->safe_psql('postgres', $describe);
like($fresh, qr/relation pipeline\.run_history/, 'the fresh catalog is described');
is($new->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_pipeline'}),
   $default, "a fresh install is at $default");
$new->stop;

for my $v (@older) {
    my $db = 'postgres';
    my $node = PostgreSQL::Test::Cluster->new('from_' . ($v =~ tr/./_/r),
                                              install_path => "$old_installs/$v/usr/lib/postgresql/15");
    $node->init;
    $node->append_conf('postgresql.conf', "max_worker_processes = 16\n");
    $node->start;
    $node->safe_psql($db, qq{
        CREATE EXTENSION pg_pipeline VERSION '$v';
        CREATE SCHEMA s;
        CREATE TABLE s.orders (id bigint PRIMARY KEY, amount numeric NOT NULL, seq bigint NOT NULL);
        CREATE INDEX ON s.orders (seq);
        CREATE TABLE s.events (id bigint PRIMARY KEY, kind text NOT NULL);
        SELECT pipeline.create_pipeline('orders', 's.orders', 's.orders_core',
                                        unique_key => '{id}', incremental_column => 'seq');
        CREATE VIEW s.big_orders AS SELECT id, amount, seq FROM s.orders_core WHERE amount > 10;
        SELECT pipeline.create_pipeline('big', 's.big_orders', 's.big_core', unique_key => '{id}', mode => 'full');
        SELECT pipeline.create_pipeline('events', 's.events', 's.events_log', mode => 'append',
                                        incremental_column => 'id');
        SELECT pipeline.create_pipeline('doomed', 's.events', 's.doomed', unique_key => '{id}');
        INSERT INTO s.orders SELECT g, g * 3, g FROM generate_series(1, 20) g;
        INSERT INTO s.events SELECT g, 'k' || g FROM generate_series(1, 5) g;
        SELECT pipeline.run('orders');
        SELECT pipeline.run('big');
        SELECT pipeline.run('events');
        SELECT pipeline.run('orders');    -- nothing new
        SELECT pipeline.alter_pipeline('orders', description => 'orders into core');
        SELECT pipeline.drop_pipeline('doomed');
    });
    # a failed run, recorded autonomously
    my ($rc) = $node->psql($db, q{ALTER TABLE s.orders_core ADD CHECK (amount < 90) NOT VALID;
                                 INSERT INTO s.orders VALUES (21, 99, 21);
                                 SELECT pipeline.run('orders');});
    $node->safe_psql($db, q{ALTER TABLE s.orders_core DROP CONSTRAINT orders_core_amount_check});
    $node->poll_query_until($db, q{SELECT EXISTS (SELECT 1 FROM pipeline.run_history WHERE status = 'failed')});
    my $before = $node->safe_psql($db, $kept);
    like($before, qr/failed:0:23514/, "$v: the old version recorded a failed run");

    is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'pg_pipeline'}),
       $v, "$v: installed from the old package");

    # the package upgrade: the same data directory, the system's installation
    $node->stop;
    $node->{_install_path} = $system;
    $node->start;
    # the new library on the old catalog refuses to work, and says what to do
    my ($vrc, $vout, $verr) = $node->psql($db, q{SELECT pipeline.run('orders')});
    like($verr, qr/catalog in this database is at version \Q$v\E, its library at \Q$default\E.*HINT:  Run ALTER EXTENSION pg_pipeline UPDATE/s,
         "$v: before UPDATE, the new library refuses the old catalog (55000) with a hint");
    is($node->safe_psql($db, $kept), $before, "$v: and changed nothing");
    $node->safe_psql($db, 'ALTER EXTENSION pg_pipeline UPDATE');
    is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'pg_pipeline'}),
       $default, "$v: updated to $default");

    my $upgraded = $node->safe_psql($db, $describe);
    if ($upgraded eq $fresh) {
        pass("$v: the upgraded catalog is identical to a fresh install");
    } else {
        my %f = map { $_ => 1 } split /\n/, $fresh;
        my %u = map { $_ => 1 } split /\n/, $upgraded;
        my @diff = ((map { "only fresh:    $_" } grep { !$u{$_} } sort keys %f),
                    (map { "only upgraded: $_" } grep { !$f{$_} } sort keys %u));
        fail("$v: the upgraded catalog is identical to a fresh install");
        diag(join("\n", @diff[0 .. ($#diff < 40 ? $#diff : 40)]));
    }
    is($node->safe_psql($db, $kept), $before, "$v: history, audit, versions, lineage and watermarks are intact");
    is($node->safe_psql($db, q{SELECT valid FROM pipeline.verify_audit()}), 't', "$v: verify_audit() passes");

    $node->safe_psql($db, q{INSERT INTO s.orders VALUES (22, 12, 22); INSERT INTO s.events VALUES (6, 'k6')});
    is($node->safe_psql($db, q{SELECT pipeline.run('orders') > 0, pipeline.run('big') > 0, pipeline.run('events') > 0}),
       't|t|t', "$v: the old pipelines run after the update");
    is($node->safe_psql($db, q{SELECT (SELECT count(*) FROM s.orders_core) || ' ' || (SELECT count(*) FROM s.big_core)
                                      || ' ' || (SELECT count(*) FROM s.events_log)}),
       '22 19 6', "$v: and load exactly the new rows");
    is($node->safe_psql($db, q{SELECT valid FROM pipeline.verify_audit()}), 't', "$v: the chain goes on valid");
    $node->stop;
}

done_testing();
