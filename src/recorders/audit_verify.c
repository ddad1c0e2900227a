/*-------------------------------------------------------------------------
 *
 * src/recorders/audit_verify.c
 *
 * What keeps the audit log honest and lets anyone check it: the
 * append-only trigger (pipeline._audit_refuse, which refuses UPDATE,
 * DELETE and TRUNCATE but the prune's own DELETEs), the walk along the
 * chain from the latest anchor (ReadLatestAnchor, StartWalk, WalkEntry,
 * also used by the prune in audit_retention.c to check what it cuts),
 * pipeline.verify_audit(), which reports the first entry that breaks the
 * chain, and pipeline.audit_head(), the head for anchoring the chain
 * outside the database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "pipeline/recorders/audit.h"
#include "audit_internal.h"

PIPELINE_FUNCTION(pipeline_audit_refuse);
PIPELINE_FUNCTION(pipeline_verify_audit);
PIPELINE_FUNCTION(pipeline_audit_head);

/*
 * pipeline._audit_refuse() is the statement trigger that refuses UPDATE,
 * DELETE and TRUNCATE on pipeline.audit_log and pipeline.audit_anchor, for
 * every role, after logging the attempt. Only the DELETE statements of
 * pipeline.prune_audit() itself (audit_prune_active) pass.
 */
Datum
pipeline_audit_refuse(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;
	const char *table;
	char	   *qualified;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pipeline._audit_refuse must be called as a trigger");
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) && audit_prune_active)
		return PointerGetDatum(NULL);	/* a statement trigger's result is ignored */
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "DELETE";
	else
		op = "TRUNCATE";
	table = RelationGetRelationName(trigdata->tg_relation);
	qualified = psprintf("pipeline.%s", table);
	AuditRefusal(psprintf("%s %s", table, op), table, qualified, 0,
				 psprintf("%s is append-only", qualified));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is append-only", qualified),
			 errdetail("%s on %s is refused for every role; the attempt was logged.", op, qualified),
			 errhint("Audit entries are written by pg_pipeline only; read them, or verify them with pipeline.verify_audit(); old entries go with pipeline.prune_audit().")));
	PG_RETURN_NULL();
}

/* ColumnText reads a text-like column of the current row, NULL if null */
static char *
ColumnText(HeapTuple tup, TupleDesc desc, int attno)
{
	return SPI_getvalue(tup, desc, attno);
}

/* ColumnJson reads a jsonb column as jsonb's canonical text, NULL if null */
static char *
ColumnJson(HeapTuple tup, TupleDesc desc, int attno)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, attno, &isnull);
	Jsonb	   *jb;

	if (isnull)
		return NULL;
	jb = DatumGetJsonbP(d);
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/* ColumnDigest copies a bytea column that should hold a SHA-256 digest */
static bool
ColumnDigest(HeapTuple tup, TupleDesc desc, int attno, uint8 *out)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, attno, &isnull);
	bytea	   *b;

	if (isnull)
		return false;
	b = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(b) != PG_SHA256_DIGEST_LENGTH)
		return false;
	memcpy(out, VARDATA_ANY(b), PG_SHA256_DIGEST_LENGTH);
	return true;
}

/*
 * The columns a chain walk reads, in this order; the last two are the cut
 * an audit_prune entry records (NULL for other entries).
 */
#define CHAIN_COLUMNS \
	"seq, logged_at, session_id, role_name, session_role, action, object_type," \
	" object_name, pipeline_id, run_id, outcome, config_before, config_after," \
	" details, prev_hash, hash," \
	" CASE WHEN action = 'audit_prune' THEN details->>'cut_seq' END," \
	" CASE WHEN action = 'audit_prune' THEN details->>'cut_hash' END"

/* StartWalk sets a walk to begin right after the anchor (seq 0: none) */
void
StartWalk(ChainWalk *w, int64 anchor_seq, const uint8 *anchor_hash)
{
	memset(w, 0, sizeof(*w));
	w->mcxt = CurrentMemoryContext;
	w->anchor_seq = anchor_seq;
	w->expected = anchor_seq + 1;
	if (anchor_seq > 0)
	{
		memcpy(w->prev, anchor_hash, PG_SHA256_DIGEST_LENGTH);
		w->anchor_hex = HexString(anchor_hash, PG_SHA256_DIGEST_LENGTH);
	}
}

/* WalkProblem records the first problem of a walk and returns false */
static bool
WalkProblem(ChainWalk *w, int64 seq, const char *problem, const char *detail)
{
	w->bad_seq = seq;
	w->problem = problem;
	w->detail = MemoryContextStrdup(w->mcxt, detail);
	return false;
}

/*
 * WalkEntry checks one entry (a row of CHAIN_COLUMNS) against the walk: its
 * seq follows, its content matches its hash, it links to the entry before
 * it, and an audit_prune entry that records the anchor records its hash.
 * It returns false at the first problem.
 */
bool
WalkEntry(ChainWalk *w, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	int64		seq = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	TimestampTz at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
	const char *fields[AF_NFIELDS];
	Datum		d;
	int64		pipeline_id;
	int64		run_id;
	uint8		stored_prev[PG_SHA256_DIGEST_LENGTH];
	uint8		stored[PG_SHA256_DIGEST_LENGTH];
	uint8		computed[PG_SHA256_DIGEST_LENGTH];
	bool		prev_ok;
	bool		hash_ok;
	char	   *cut_seq;

	fields[AF_SESSION_ID] = ColumnText(tup, desc, 3);
	fields[AF_ROLE_NAME] = ColumnText(tup, desc, 4);
	fields[AF_SESSION_ROLE] = ColumnText(tup, desc, 5);
	fields[AF_ACTION] = ColumnText(tup, desc, 6);
	fields[AF_OBJECT_TYPE] = ColumnText(tup, desc, 7);
	fields[AF_OBJECT_NAME] = ColumnText(tup, desc, 8);
	d = SPI_getbinval(tup, desc, 9, &isnull);
	pipeline_id = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 10, &isnull);
	run_id = isnull ? 0 : DatumGetInt64(d);
	fields[AF_OUTCOME] = ColumnText(tup, desc, 11);
	fields[AF_BEFORE] = ColumnJson(tup, desc, 12);
	fields[AF_AFTER] = ColumnJson(tup, desc, 13);
	fields[AF_DETAILS] = ColumnJson(tup, desc, 14);
	prev_ok = ColumnDigest(tup, desc, 15, stored_prev);
	hash_ok = ColumnDigest(tup, desc, 16, stored);

	if (seq > w->expected)
		return WalkProblem(w, w->expected, "removed",
						   seq == w->expected + 1
						   ? psprintf("entry %lld is missing: the entry after %lld is %lld",
									  (long long) w->expected, (long long) (w->expected - 1), (long long) seq)
						   : psprintf("entries %lld to %lld are missing",
									  (long long) w->expected, (long long) (seq - 1)));
	if (seq < w->expected)
		return WalkProblem(w, seq, "out of order",
						   psprintf("entry %lld comes after entry %lld", (long long) seq,
									(long long) (w->expected - 1)));
	EntryHash(prev_ok ? stored_prev : w->prev, seq, at, pipeline_id, run_id, fields, computed);
	if (!hash_ok || memcmp(computed, stored, PG_SHA256_DIGEST_LENGTH) != 0)
		return WalkProblem(w, seq, "changed",
						   psprintf("the content of entry %lld does not match its hash", (long long) seq));
	if (!prev_ok || memcmp(stored_prev, w->prev, PG_SHA256_DIGEST_LENGTH) != 0)
		return WalkProblem(w, seq, "out of order",
						   psprintf(seq == w->anchor_seq + 1
									? "entry %lld does not link to the anchor before it: the anchor or the entry was replaced"
									: "entry %lld does not link to the entry before it: it was inserted, or the entries before it were replaced",
									(long long) seq));
	cut_seq = ColumnText(tup, desc, 17);
	if (w->anchor_seq > 0 && cut_seq != NULL &&
		strcmp(cut_seq, psprintf("%lld", (long long) w->anchor_seq)) == 0)
	{
		char	   *cut_hash = ColumnText(tup, desc, 18);

		if (cut_hash == NULL || strcmp(cut_hash, w->anchor_hex) != 0)
			return WalkProblem(w, seq, "anchor",
							   psprintf("the audit_prune entry %lld records another hash for the anchor at seq %lld than pipeline.audit_anchor holds",
										(long long) seq, (long long) w->anchor_seq));
		w->anchor_confirmed = true;
	}
	memcpy(w->prev, stored, PG_SHA256_DIGEST_LENGTH);
	w->expected = seq + 1;
	w->seq = seq;
	w->logged_at = at;
	w->checked++;
	return true;
}

/* FinishWalk requires, once the whole chain was walked, the anchor's entry */
static bool
FinishWalk(ChainWalk *w)
{
	if (w->problem != NULL || w->anchor_seq == 0 || w->anchor_confirmed)
		return w->problem == NULL;
	return WalkProblem(w, w->anchor_seq, "anchor",
					   psprintf("no audit_prune entry in the chain records the anchor at seq %lld",
								(long long) w->anchor_seq));
}

/*
 * ReadLatestAnchor returns the seq (0: none) and hash of the latest anchor,
 * through SPI with the caller's snapshot rules (read_only: the caller's).
 */
int64
ReadLatestAnchor(uint8 *hash, bool read_only)
{
	bool		isnull;
	int64		seq;

	memset(hash, 0, PG_SHA256_DIGEST_LENGTH);
	if (!OidIsValid(AuditAnchorRelid()))
		return 0;
	ExecCatalog("SELECT seq, hash FROM pipeline.audit_anchor ORDER BY seq DESC LIMIT 1",
				0, NULL, NULL, NULL, read_only);
	if (SPI_processed == 0)
		return 0;
	seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!ColumnDigest(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, hash))
		memset(hash, 0xff, PG_SHA256_DIGEST_LENGTH);	/* never links */
	return seq;
}

/* OpenChainCursor opens a cursor over the entries after an anchor, as the catalog owner */
Portal
OpenChainCursor(int64 after_seq, bool read_only)
{
	RoleSwitch	sw;
	int			nestlevel = PinSearchPath();
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(after_seq)};
	Portal		portal;

	BecomeCatalogOwner(&sw);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT " CHAIN_COLUMNS " FROM pipeline.audit_log"
									   " WHERE seq > $1 ORDER BY seq",
									   1, types, values, NULL, read_only, 0);
	RestoreRole(&sw);
	UnpinSearchPath(nestlevel);
	return portal;
}

/* FetchChain fetches the next rows of a chain cursor as the catalog owner */
uint64
FetchChain(Portal portal, int rows)
{
	RoleSwitch	sw;
	int			nestlevel = PinSearchPath();

	BecomeCatalogOwner(&sw);
	SPI_cursor_fetch(portal, true, rows);
	RestoreRole(&sw);
	UnpinSearchPath(nestlevel);
	return SPI_processed;
}

/* VerifyResult fills the one row pipeline.verify_audit() returns */
static Datum
VerifyResult(FunctionCallInfo fcinfo, ChainWalk *w)
{
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false, false, w->problem == NULL, w->problem == NULL,
	w->problem == NULL, w->anchor_seq == 0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	values[0] = BoolGetDatum(w->problem == NULL);
	values[1] = Int64GetDatum(w->checked);
	values[2] = Int64GetDatum(w->bad_seq);
	values[3] = w->problem ? CStringGetTextDatum(w->problem) : (Datum) 0;
	values[4] = w->detail ? CStringGetTextDatum(w->detail) : (Datum) 0;
	values[5] = Int64GetDatum(w->anchor_seq);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * pipeline.verify_audit() walks the chain in seq order from the latest
 * anchor (or from the first entry when nothing was ever pruned) and reports
 * the first entry that breaks it: a gap in seq (entries removed), an entry
 * whose content no longer matches its hash (changed), one that does not
 * link to the one before it or to the anchor (inserted, moved, or the
 * anchor replaced), or an anchor that no audit_prune entry of the chain
 * records. Entries are read through a cursor, a thousand at a time.
 */
Datum
pipeline_verify_audit(PG_FUNCTION_ARGS)
{
	uint8		anchor_hash[PG_SHA256_DIGEST_LENGTH];
	int64		anchor_seq;
	ChainWalk	w;
	Portal		portal;
	MemoryContext outer = CurrentMemoryContext;

	SPI_connect();
	anchor_seq = ReadLatestAnchor(anchor_hash, true);
	StartWalk(&w, anchor_seq, anchor_hash);
	w.mcxt = outer;
	portal = OpenChainCursor(anchor_seq, true);
	while (w.problem == NULL && FetchChain(portal, 1000) > 0)
	{
		for (uint64 i = 0; i < SPI_processed && w.problem == NULL; i++)
			(void) WalkEntry(&w, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	(void) FinishWalk(&w);
	SPI_finish();
	return VerifyResult(fcinfo, &w);
}

/*
 * pipeline.audit_head() returns the last entry's seq and hash, for anchoring
 * the chain outside the database (removing entries from the end of the
 * chain cannot be detected from inside it).
 */
Datum
pipeline_audit_head(PG_FUNCTION_ARGS)
{
	uint8		hash[PG_SHA256_DIGEST_LENGTH];
	int64		seq = ReadAuditHead(hash);
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	values[0] = Int64GetDatum(seq);
	values[1] = CStringGetTextDatum(HexString(hash, PG_SHA256_DIGEST_LENGTH));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
