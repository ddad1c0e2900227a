/*-------------------------------------------------------------------------
 *
 * src/common/subxact.c
 *
 * Work that may fail without failing its caller: TryInSubtransaction runs a
 * function in an internal subtransaction, rolls back only what it did when
 * it raises an error, and reports the SQLSTATE (and, if asked, the
 * message) instead of the error. Used where one part of an answer degrades
 * on its own (a pipeline's source lag in pipeline.status, the sql facet of
 * an OpenLineage event, one pipeline's purge in a launcher pass). The
 * subtransaction is always closed before control leaves, so no error can
 * leave the session in a half-aborted state.
 *
 * And what may serve only the statement it was armed for: the gates of the
 * load statement and the keys of its masks are armed for the current
 * (sub)transaction of this backend (ArmForStatement), and refuse to serve
 * in any other (ArmedForStatement), so that nobody calls them outside it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pipeline/common.h"

/*
 * TryInSubtransactionIf runs fn(arg) in an internal subtransaction, in the
 * caller's memory context. Returns 0 when fn finished, else the SQLSTATE of
 * its error, which is discarded with whatever fn did; with message,
 * *message is set to the error's message (in the caller's context). A
 * cancel is passed on, and so is, once the subtransaction is rolled back,
 * an error that caught (when given) says not to catch.
 */
int
TryInSubtransactionIf(void (*fn) (void *arg), void *arg, bool (*caught) (int sqlerrcode),
					  char **message)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int sqlerrcode = 0;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (caught && !caught(edata->sqlerrcode))
			ReThrowError(edata);
		sqlerrcode = edata->sqlerrcode;
		if (message)
			*message = pstrdup(edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return sqlerrcode;
}

/* ArmForStatement arms a gate for the statement about to run in this (sub)transaction */
void
ArmForStatement(StatementArm *arm)
{
	arm->armed = true;
	arm->lxid = MyProc->lxid;
	arm->subxid = GetCurrentSubTransactionId();
}

/* ArmedForStatement: the gate was armed in this (sub)transaction */
bool
ArmedForStatement(const StatementArm *arm)
{
	return arm->armed && arm->lxid == MyProc->lxid && arm->subxid == GetCurrentSubTransactionId();
}

/* TryInSubtransactionMessage catches every error of fn but a cancel */
int
TryInSubtransactionMessage(void (*fn) (void *arg), void *arg, char **message)
{
	return TryInSubtransactionIf(fn, arg, NULL, message);
}

/* TryInSubtransaction is TryInSubtransactionMessage without the message */
int
TryInSubtransaction(void (*fn) (void *arg), void *arg)
{
	return TryInSubtransactionMessage(fn, arg, NULL);
}
