# test/t/CitusCluster.pm
#
# The Citus 13 cluster of the citus suite's TAP files (docs/citus.md): a
# coordinator (shared_preload_libraries = 'citus,pg_pipeline', plus any
# extra libraries) and two worker nodes ('citus'), three
# PostgreSQL::Test::Cluster instances that reach each other over the Unix
# socket directory they share, with pg_pipeline created on the coordinator
# (Citus propagates it to the worker nodes).
package CitusCluster;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use Exporter 'import';
our @EXPORT = qw(start_citus_cluster);

# start_citus_cluster PREFIX, EXTRA_COORDINATOR_CONF: returns the
# coordinator and the two worker nodes, started, with the workers added
sub start_citus_cluster {
    my ($prefix, $extra) = @_;
    my $coord = PostgreSQL::Test::Cluster->new("${prefix}coordinator");
    my @workers = map { PostgreSQL::Test::Cluster->new("${prefix}worker$_") } (1, 2);
    for my $node ($coord, @workers) {
        $node->init;
        my $libs = $node == $coord ? 'citus,pg_pipeline' : 'citus';
        $libs .= ',pg_cron' if $node == $coord && ($extra // '') =~ /cron\./;
        $node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$libs'
max_prepared_transactions = 20
citus.node_conninfo = 'sslmode=disable'
log_min_messages = warning
});
        if ($node == $coord) {
            $node->append_conf('postgresql.conf', "pipeline.databases = 'postgres'\n");
            $node->append_conf('postgresql.conf', $extra) if $extra;
        }
        $node->start;
        $node->safe_psql('postgres', 'CREATE EXTENSION citus');
    }
    $coord->safe_psql('postgres', sprintf(q{SELECT citus_set_coordinator_host('%s', %d)},
                                          $coord->host, $coord->port));
    $coord->safe_psql('postgres', sprintf(q{SELECT citus_add_node('%s', %d)}, $_->host, $_->port))
      for @workers;
    $coord->safe_psql('postgres', 'CREATE EXTENSION pg_pipeline');
    return ($coord, @workers);
}

1;
