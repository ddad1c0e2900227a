/*-------------------------------------------------------------------------
 *
 * src/common/read_snapshot.c
 *
 * What a statement that starts now can see, written down so that one can
 * ask later whether the transaction that wrote a row was visible to it.
 * CaptureReadSnapshot spells it as a pg_snapshot ("xmin:xmax:xip,..."),
 * with every transaction in progress in the list: the top-level ones and,
 * unlike pg_current_snapshot(), their subtransactions, whose rows carry a
 * subtransaction's id as xmin; a snapshot whose subtransactions overflowed
 * is written as seeing nothing between its xmin and xmax. The capturing
 * transaction's own ids are listed as in progress too: rows it writes after
 * the capture would otherwise look visible.
 *
 * A run captures one after it waited for the writers of its source and
 * before its load statement, which takes its own snapshot later and so sees
 * at least as much (engine/engine.c); raw retention asks, row by row,
 * whether the row's xmin was visible to it (engine/retention_proof.c).
 * XidWasVisible answers that for a row's 32-bit xmin, widened to 64 bits
 * against the next transaction id. Every answer errs on one side only: a
 * transaction that may not have been visible is reported as not visible.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "access/transam.h"
#include "access/xact.h"
#include "lib/stringinfo.h"
#include "storage/proc.h"
#include "utils/snapmgr.h"

#include "pipeline/common.h"

/*
 * WidenAgainst gives a 32-bit id the greatest 64-bit id with its low bits
 * that is not after next. For a transaction that exists that is its id
 * (ids are assigned in order and wrap around only after 2^32); for an id
 * older than 2^32 transactions it is a later id with the same low bits.
 */
static uint64
WidenAgainst(TransactionId xid, FullTransactionId next)
{
	uint64		epoch = EpochFromFullTransactionId(next);

	if (!TransactionIdIsNormal(xid))
		return (uint64) xid;	/* bootstrap and frozen ids: before everything */
	if (xid > XidFromFullTransactionId(next))
	{
		if (epoch == 0)
			return U64FromFullTransactionId(next);	/* cannot exist: never visible */
		epoch--;
	}
	return (epoch << 32) | xid;
}

static int
CompareUint64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/* AddInProgress appends id to list when it lies in [xmin, xmax) */
static void
AddInProgress(uint64 *list, int *n, uint64 id, uint64 xmin, uint64 xmax)
{
	if (id >= xmin && id < xmax)
		list[(*n)++] = id;
}

/*
 * CaptureReadSnapshot returns, as the text of a pg_snapshot, a snapshot
 * taken now with the subtransactions of running transactions and this
 * transaction's own ids (top-level and cached subtransactions) in progress.
 */
char *
CaptureReadSnapshot(void)
{
	Snapshot	snap = GetLatestSnapshot();
	FullTransactionId next = ReadNextFullTransactionId();
	uint64		xmin = WidenAgainst(snap->xmin, next);
	uint64		xmax = WidenAgainst(snap->xmax, next);
	TransactionId own = GetTopTransactionIdIfAny();
	int			cap = snap->xcnt + Max(snap->subxcnt, 0) + PGPROC_MAX_CACHED_SUBXIDS + 1;
	uint64	   *list = palloc(sizeof(uint64) * cap);
	int			n = 0;
	StringInfoData buf;

	/* our own later subtransactions get ids after next: not visible anyway */
	if (TransactionIdIsValid(own) && MyProc->subxidStatus.overflowed)
		xmax = Min(xmax, WidenAgainst(own, next));
	/* subtransactions of others not listed: see nothing between xmin and xmax */
	if (snap->suboverflowed)
		xmax = xmin;
	for (uint32 i = 0; i < snap->xcnt; i++)
		AddInProgress(list, &n, WidenAgainst(snap->xip[i], next), xmin, xmax);
	for (int32 i = 0; i < snap->subxcnt; i++)
		AddInProgress(list, &n, WidenAgainst(snap->subxip[i], next), xmin, xmax);
	if (TransactionIdIsValid(own))
	{
		AddInProgress(list, &n, WidenAgainst(own, next), xmin, xmax);
		for (int i = 0; i < MyProc->subxidStatus.count; i++)
			AddInProgress(list, &n, WidenAgainst(MyProc->subxids.xids[i], next), xmin, xmax);
	}
	qsort(list, n, sizeof(uint64), CompareUint64);

	initStringInfo(&buf);
	appendStringInfo(&buf, UINT64_FORMAT ":" UINT64_FORMAT ":", xmin, xmax);
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && list[i] == list[i - 1])
			continue;
		appendStringInfo(&buf, "%s" UINT64_FORMAT, i > 0 ? "," : "", list[i]);
	}
	pfree(list);
	return buf.data;
}

/*
 * ParseReadSnapshot reads the text of a pg_snapshot (as the type's output
 * spells it: xmin, xmax, the ids in progress in ascending order).
 */
ReadSnapshot *
ParseReadSnapshot(const char *text)
{
	ReadSnapshot *rs = palloc0(sizeof(ReadSnapshot));
	const char *p = text;
	char	   *end;
	int			cap = 8;

	rs->xmin = strtou64(p, &end, 10);
	if (*end != ':')
		elog(ERROR, "invalid read snapshot \"%s\"", text);
	rs->xmax = strtou64(end + 1, &end, 10);
	if (*end != ':')
		elog(ERROR, "invalid read snapshot \"%s\"", text);
	p = end + 1;
	rs->xip = palloc(sizeof(uint64) * cap);
	while (*p)
	{
		if (rs->nxip == cap)
		{
			cap *= 2;
			rs->xip = repalloc(rs->xip, sizeof(uint64) * cap);
		}
		rs->xip[rs->nxip++] = strtou64(p, &end, 10);
		if (end == p || (*end != ',' && *end != '\0'))
			elog(ERROR, "invalid read snapshot \"%s\"", text);
		p = *end == ',' ? end + 1 : end;
	}
	return rs;
}

/*
 * XidWasVisible says whether the transaction that wrote a row (its 32-bit
 * xmin) was visible to a captured snapshot: ended before it was taken, and
 * not in progress then. The id is widened against *next, the next
 * transaction id as the caller last read it (invalid: not yet read), read
 * again whenever the xmin is not before it (a row written since), so that
 * a recent id never passes for an old one. The caller reads it anew for
 * each statement, so that it is never 2^31 transactions old. An id older
 * than 2^32 transactions widens to a later one, which can only turn a
 * "visible" into "not visible"; so do the special ids below the normal
 * ones (rows frozen before PostgreSQL 9.4 kept no xmin).
 */
bool
XidWasVisible(TransactionId xmin, const ReadSnapshot *snap, FullTransactionId *next)
{
	uint64		id;

	if (!TransactionIdIsNormal(xmin))
		return false;
	if (!FullTransactionIdIsValid(*next) ||
		!TransactionIdPrecedes(xmin, XidFromFullTransactionId(*next)))
		*next = ReadNextFullTransactionId();
	id = WidenAgainst(xmin, *next);
	if (id < snap->xmin)
		return true;
	if (id >= snap->xmax)
		return false;
	return bsearch(&id, snap->xip, snap->nxip, sizeof(uint64), CompareUint64) == NULL;
}
