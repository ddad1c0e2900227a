# test/reliability/Reliability.pm
#
# Helpers shared by the reliability suite (test/t/005-008): the printed seed
# that makes a random run reproducible, whether a node's postmaster is still
# the one that was started, the crash lines of its server log, and starting
# a node again after it was killed. The suite's files use
# PostgreSQL::Test::Cluster for their servers; this module only adds what
# they all need on top of it.
package Reliability;

use strict;
use warnings;
use Exporter 'import';
use Time::HiRes qw(usleep);
use Test::More;

our @EXPORT_OK = qw(pick_seed postmaster_pid postmaster_alive crash_lines
  restart_after_kill wait_for);

# pick_seed takes PP_SEED from the environment or derives a seed from the
# time and the pid, seeds Perl's generator with it and prints it, so that a
# failing run is repeated with PP_SEED=<seed>.
sub pick_seed {
    my ($what) = @_;
    my $seed = defined $ENV{PP_SEED} && $ENV{PP_SEED} =~ /^\d+$/
      ? $ENV{PP_SEED} : (time() ^ ($$ << 8)) % 1_000_000_007;
    srand($seed);
    diag("$what: seed $seed (repeat with PP_SEED=$seed)");
    return $seed;
}

# postmaster_pid reads the pid of a node's postmaster from postmaster.pid
# (undef when the file is gone).
sub postmaster_pid {
    my ($node) = @_;
    my $file = $node->data_dir . '/postmaster.pid';
    open(my $fh, '<', $file) or return undef;
    my $pid = <$fh>;
    close $fh;
    return undef unless defined $pid;
    chomp $pid;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# postmaster_alive says whether the given postmaster pid still runs.
sub postmaster_alive {
    my ($pid) = @_;
    return defined $pid && kill(0, $pid) ? 1 : 0;
}

# crash_lines returns the server log lines that tell of a crash: a process
# terminated by a signal, a PANIC, a failed assertion, a backend that exited
# abnormally. $allow_kill lets "terminated by signal 9" through (the kill -9
# test sends those itself), and then also the restarts they cause.
sub crash_lines {
    my ($node, $allow_kill) = @_;
    open(my $fh, '<', $node->logfile) or return ("cannot read " . $node->logfile);
    my @bad;
    while (my $line = <$fh>) {
        next unless $line =~ /terminated by signal|was terminated by exception|PANIC|TRAP:|exited with exit code [^01]|stuck spinlock/;
        next if $allow_kill && $line =~ /terminated by signal 9: Killed/;
        chomp $line;
        push @bad, $line;
    }
    close $fh;
    return @bad;
}

# wait_for polls a condition (a code ref) every 100 ms for at most $seconds
# and returns whether it held.
sub wait_for {
    my ($seconds, $cond) = @_;
    for (my $i = 0; $i < $seconds * 10; $i++) {
        return 1 if $cond->();
        usleep(100_000);
    }
    return $cond->() ? 1 : 0;
}

# restart_after_kill kills a node's postmaster with SIGKILL and starts the
# node again. The dead postmaster must be gone (reaped) first, or the new
# one takes its postmaster.pid for a live server; its orphaned children
# notice the death and exit on their own, but until they have the old shared
# memory is still attached and the start is refused, so it retries for up to
# a minute.
sub restart_after_kill {
    my ($node) = @_;
    my $old = postmaster_pid($node);
    $node->kill9;
    wait_for(60, sub { !postmaster_alive($old) });
    for (my $i = 0; $i < 60; $i++) {
        return 1 if $node->start(fail_ok => 1);
        # a failed start may have read the stale pid file as a running node
        $node->{_pid} = undef unless postmaster_alive($node->{_pid});
        sleep 1;
    }
    return 0;
}

1;
