/*-------------------------------------------------------------------------
 *
 * src/workers/part_worker.c
 *
 * A dynamic background worker that loads one part of a parallel run
 * (engine/parallel_load.c starts it; docs/parallel.md). It attaches to the
 * leader's DSM segment, opens a transaction block, loads its partitions
 * (engine/parallel_part.c), and PREPAREs the transaction as
 * 'pg_pipeline:<pipeline>:<run>:<part>' (a part that wrote nothing just
 * commits). It reports its state, counts and any error in its slot and
 * sets the leader's latch. Then it waits for the leader's decision: COMMIT
 * PREPARED when the leader's transaction committed, ROLLBACK PREPARED when
 * it did not. A part that fails rolls back and reports the error, which the
 * leader re-raises. If the leader goes away without deciding, the part
 * exits and leaves its prepared transaction to ResolvePreparedParts.
 *
 * SIGTERM (the leader stopping a run that failed, a shutdown) ends the
 * worker at its next interrupt check; what it had not prepared rolls back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "pipeline/workers.h"

/* ReportState publishes the part's state and wakes the leader */
static void
ReportState(ParallelShared *sh, PartSlot *slot, PartState state)
{
	pg_write_barrier();
	slot->state = state;
	SetLatch(sh->leader_latch);
}

/* KeepError copies the error being handled into the part's slot */
static void
KeepError(PartSlot *slot)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	ErrorData  *edata = CopyErrorData();
	char	   *check = TakeFailedCheck();

	MemoryContextSwitchTo(old);
	slot->sqlerrcode = edata->sqlerrcode;
	strlcpy(slot->message, edata->message ? edata->message : "unknown error", PARALLEL_TEXT);
	strlcpy(slot->detail, edata->detail ? edata->detail : "", PARALLEL_TEXT);
	strlcpy(slot->hint, edata->hint ? edata->hint : "", PARALLEL_TEXT);
	strlcpy(slot->failed_check, check ? check : "", PARALLEL_TEXT);
}

/*
 * LoadAndPrepare loads the part in a transaction block and prepares it
 * (or commits it when it wrote nothing); returns whether it prepared.
 */
static bool
LoadAndPrepare(ParallelShared *sh, int part, const char *gid)
{
	PartSlot   *slot = &sh->slots[part];
	bool		wrote;
	int			nestlevel;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	BeginTransactionBlock();
	CommitTransactionCommand();
	StartTransactionCommand();
	SPI_connect();
	/* what the leader's session evaluates with, a serial run's settings */
	TakePartSettings(sh->settings);
	PushActiveSnapshot(GetTransactionSnapshot());
	nestlevel = PinSearchPath();
	ReportState(sh, slot, PART_LOADING);
	LoadParallelPart(sh, part);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	PopActiveSnapshot();
	PauseParallelPart(sh, part, PAUSE_BEFORE_PREPARE);
	CHECK_FOR_INTERRUPTS();
	if (sh->decision == PARTS_ABORT)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("part %d of run %lld was stopped by its leader", part, (long long) sh->run_id)));
	wrote = TransactionIdIsValid(GetTopTransactionIdIfAny());
	if (wrote)
		(void) PrepareTransactionBlock(gid);
	else
		(void) EndTransactionBlock(false);
	CommitTransactionCommand();
	return wrote;
}

/* LeaderGone: the leader's process exited (without deciding) */
static bool
LeaderGone(ParallelShared *sh)
{
	return BackendPidGetProc(sh->leader_pid) == NULL;
}

/*
 * pipeline_part_worker_main loads part bgw_extra of the parallel run whose
 * DSM segment is bgw_main_arg. It connects as the bootstrap superuser; the
 * engine does the data work as the pipeline's owner.
 */
void
pipeline_part_worker_main(Datum arg)
{
	dsm_segment *seg;
	ParallelShared *sh;
	PartSlot   *slot;
	int			part;
	char		gid[GIDSIZE];
	bool		prepared = false;

	memcpy(&part, MyBgworkerEntry->bgw_extra, sizeof(int));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		proc_exit(0);			/* the leader is gone already */
	sh = dsm_segment_address(seg);
	if (part < 0 || part >= sh->nparts)
		proc_exit(1);
	slot = &sh->slots[part];
	slot->pid = MyProcPid;
	slot->latch = &MyProc->procLatch;
	PartGid(gid, sh->pipeline_id, sh->run_id, part);
	BackgroundWorkerInitializeConnectionByOid(sh->database, InvalidOid, 0);
	pgstat_report_appname("pg_pipeline part");
	/* a part sees what committed, as its leader does (RequireReadCommitted) */
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	if (sh->decision == PARTS_ABORT)
	{
		ReportState(sh, slot, PART_FINISHED);
		proc_exit(0);
	}
	pgstat_report_activity(STATE_RUNNING, gid);
	PG_TRY();
	{
		prepared = LoadAndPrepare(sh, part, gid);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		KeepError(slot);
		FlushErrorState();
		AbortOutOfAnyTransaction();
		ReportState(sh, slot, PART_FAILED);
		RESUME_INTERRUPTS();
		proc_exit(0);
	}
	PG_END_TRY();
	if (!prepared)
	{
		ReportState(sh, slot, PART_EMPTY);
		proc_exit(0);
	}
	ReportState(sh, slot, PART_PREPARED);
	pgstat_report_activity(STATE_IDLE, NULL);

	/* the decision: the leader's, or nobody's (the recovery's) */
	for (;;)
	{
		pg_read_barrier();
		if (sh->decision != PARTS_UNDECIDED)
			break;
		if (LeaderGone(sh))
			proc_exit(0);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (sh->decision == PARTS_COMMIT)
	{
		StartTransactionCommand();
		PauseParallelPart(sh, part, PAUSE_BEFORE_COMMIT_PREPARED);
		CommitTransactionCommand();
	}
	pgstat_report_activity(STATE_RUNNING, sh->decision == PARTS_COMMIT ? "COMMIT PREPARED" : "ROLLBACK PREPARED");
	StartTransactionCommand();
	FinishPreparedTransaction(gid, sh->decision == PARTS_COMMIT);
	CommitTransactionCommand();
	ReportState(sh, slot, PART_FINISHED);
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
