/*-------------------------------------------------------------------------
 *
 * src/engine/retention_proof.c
 *
 * The proof that a source row was read by every pipeline that reads its
 * table, asked row by row by the purge's DELETE statement
 * (pipeline._raw_loaded(xmin, value of each reader's column ...)). A row
 * was read by a reader when one of the reader's committed windows
 * (catalog/read_windows.c) holds its value and the snapshot captured
 * before that window's load saw the transaction that wrote it
 * (common/read_snapshot.c). The windows are loaded and armed by the purge
 * (retention.c) just before its statement and disarmed after it, on every
 * way out: called at any other time, the function refuses (55000).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "pipeline/engine.h"
#include "retention_internal.h"

PIPELINE_FUNCTION(pipeline_raw_loaded);

static ProofReader **armed_readers = NULL;
static int	armed_count = 0;
static FullTransactionId armed_next = {0};

/* CompareBase orders two values of a reader's base type */
static int
CompareBase(Oid typid, Datum a, Datum b)
{
	return CompareWatermarks(a, b, typid, InvalidOid);
}

/* BoundValue reads a stored bound (canonical text) as a value of the base type */
static Datum
BoundValue(const char *text, Oid typid)
{
	Oid			input;
	Oid			ioparam;

	getTypeInputInfo(typid, &input, &ioparam);
	return OidInputFunctionCall(input, (char *) text, ioparam, -1);
}

/* the sort order of windows: none for a lower bound first, then by lower bound */
static Oid	sort_typid;

static int
CompareWindows(const void *a, const void *b)
{
	const ProofWindow *x = a;
	const ProofWindow *y = b;

	if (!x->has_lower || !y->has_lower)
		return (int) x->has_lower - (int) y->has_lower;
	return CompareBase(sort_typid, x->lower, y->lower);
}

/*
 * BuildProofReader turns a reader's stored windows (ReadWindowText) into
 * values of its column's base type, ordered by lower bound, with the
 * greatest upper bound reached up to each.
 */
ProofReader *
BuildProofReader(List *windows, Oid typid)
{
	ProofReader *r = palloc0(sizeof(ProofReader));
	ListCell   *lc;
	int			i = 0;

	r->typid = getBaseType(typid);
	r->nwindows = list_length(windows);
	r->windows = palloc0(sizeof(ProofWindow) * Max(r->nwindows, 1));
	r->reach = palloc0(sizeof(Datum) * Max(r->nwindows, 1));
	foreach(lc, windows)
	{
		ReadWindowText *t = lfirst(lc);
		ProofWindow *w = &r->windows[i++];

		w->has_lower = t->lower != NULL;
		if (w->has_lower)
			w->lower = BoundValue(t->lower, r->typid);
		w->upper = BoundValue(t->upper, r->typid);
		w->snapshot = ParseReadSnapshot(t->snapshot);
	}
	sort_typid = r->typid;
	qsort(r->windows, r->nwindows, sizeof(ProofWindow), CompareWindows);
	for (i = 0; i < r->nwindows; i++)
		r->reach[i] = (i > 0 && CompareBase(r->typid, r->reach[i - 1], r->windows[i].upper) > 0)
			? r->reach[i - 1] : r->windows[i].upper;
	return r;
}

/* ProofGreatestUpper is the greatest value a reader's windows hold (it has one) */
Datum
ProofGreatestUpper(ProofReader *reader)
{
	return reader->reach[reader->nwindows - 1];
}

/*
 * ReaderRead says whether one of the reader's windows holds value and saw
 * xmin: the windows whose lower bound is under value are a prefix of the
 * order; walking it back from its end stops where no window up to there
 * reaches value.
 */
static bool
ReaderRead(ProofReader *r, Datum value, TransactionId xmin)
{
	int			lo = 0;
	int			hi = r->nwindows;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		ProofWindow *w = &r->windows[mid];

		if (!w->has_lower || CompareBase(r->typid, w->lower, value) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (int k = lo - 1; k >= 0; k--)
	{
		if (CompareBase(r->typid, r->reach[k], value) < 0)
			break;
		if (CompareBase(r->typid, r->windows[k].upper, value) >= 0 &&
			XidWasVisible(xmin, r->windows[k].snapshot, &armed_next))
			return true;
	}
	return false;
}

/* ArmRawProof lets pipeline._raw_loaded answer for the readers, in argument order */
void
ArmRawProof(ProofReader **readers, int nreaders)
{
	armed_readers = readers;
	armed_count = nreaders;
	armed_next = ReadNextFullTransactionId();
}

void
DisarmRawProof(void)
{
	armed_readers = NULL;
	armed_count = 0;
}

/*
 * pipeline._raw_loaded(xmin xid, VARIADIC "any"): whether the row whose
 * xmin and reader columns (one value per armed reader, in order) are given
 * was read by every reader. A NULL value is in no window.
 */
Datum
pipeline_raw_loaded(PG_FUNCTION_ARGS)
{
	TransactionId xmin = DatumGetTransactionId(PG_GETARG_DATUM(0));

	if (armed_readers == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline._raw_loaded is only called by a purge of raw rows"),
				 errhint("Call pipeline._purge_raw(pipeline).")));
	if (PG_NARGS() != armed_count + 1)
		elog(ERROR, "pipeline._raw_loaded got %d values for %d readers", PG_NARGS() - 1, armed_count);
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	for (int i = 0; i < armed_count; i++)
	{
		Oid			argtype = get_fn_expr_argtype(fcinfo->flinfo, i + 1);

		if (getBaseType(argtype) != armed_readers[i]->typid)
			elog(ERROR, "pipeline._raw_loaded got a value of type %s for a reader of %s",
				 format_type_be(argtype), format_type_be(armed_readers[i]->typid));
		if (PG_ARGISNULL(i + 1) || !ReaderRead(armed_readers[i], PG_GETARG_DATUM(i + 1), xmin))
			PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}
