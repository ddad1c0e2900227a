/*-------------------------------------------------------------------------
 *
 * src/recorders/audit_chain.c
 *
 * The chain of the audit log: pipeline.audit_log, append-only and
 * hash-chained. Every entry holds the time, the session, the current and
 * session roles, the action, the object, the configuration before and
 * after, and a SHA-256 hash over the entry's content and the hash of the
 * entry before it. This file owns what makes the chain: hashing an entry
 * (EntryHash, which pipeline.verify_audit() uses too), the chain lock,
 * reading the head, appending entries, and the queue of entries waiting for
 * their transaction's commit, with its transaction and subtransaction
 * callbacks. The entries are built elsewhere: registry changes and runs in
 * audit_entries.c, refusals in audit_refusals.c, prunes in
 * audit_retention.c; autonomous.c appends outside the caller's
 * transaction, audit_verify.c walks the chain.
 *
 * Locking protocol. A single chain needs its writers serialised: an entry's
 * seq and prev_hash come from the entry before it. Entries are therefore
 * queued in memory while the transaction runs (dropped with a subtransaction
 * that rolls back) and appended at PRE_COMMIT (or PRE_PREPARE): the writer
 * takes the transaction-level advisory lock (locktag_field4
 * PIPELINE_AUDIT_LOCK_CLASS), reads the head of the chain with the latest
 * snapshot (not the transaction's: a REPEATABLE READ writer must still see
 * the entry a concurrent writer committed while it waited), appends, and
 * commits; the lock goes with the commit. So the lock is held only between
 * pre-commit and commit, entries appear in commit order, a change and its
 * entry still commit or roll back together, and no open transaction (a run
 * inside a caller's BEGIN, a long batch) makes other writers wait.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pipeline/recorders/audit.h"
#include "audit_internal.h"

#define AUDIT_INSERT_SQL \
	"INSERT INTO pipeline.audit_log (seq, logged_at, session_id, role_name," \
	" session_role, action, object_type, object_name, pipeline_id, run_id," \
	" outcome, config_before, config_after, details, prev_hash, hash)" \
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"

static SPIPlanPtr audit_insert_plan = NULL;

/* Entries waiting for their transaction's commit, in TopTransactionContext */
typedef struct PendingEntry
{
	AuditEntry	e;
	SubTransactionId subid;
} PendingEntry;

static List *pending_entries = NIL;
static bool audit_callbacks_registered = false;


/* CanonicalJson parses JSON text and returns jsonb's canonical text of it */
static char *
CanonicalJson(const char *json)
{
	Jsonb	   *jb;

	if (json == NULL)
		return NULL;
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

/*
 * EntryHash computes SHA-256 over the previous entry's hash and every field
 * of an entry, each field length-prefixed (or marked NULL) so that no two
 * different entries serialise alike. The same function serves the writer
 * and pipeline.verify_audit(), so they cannot drift apart. The bytes hashed
 * are the previous hash, then the serialised entry.
 */
void
EntryHash(const uint8 *prev, int64 seq, TimestampTz logged_at, int64 pipeline_id,
		  int64 run_id, const char *const *fields, uint8 *out)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (const char *) prev, PG_SHA256_DIGEST_LENGTH);
	appendStringInfo(&buf, "pg_pipeline audit v1|%lld|%lld|%lld|%lld",
					 (long long) seq, (long long) logged_at,
					 (long long) pipeline_id, (long long) run_id);
	for (int i = 0; i < AF_NFIELDS; i++)
	{
		if (fields[i] == NULL)
			appendStringInfoString(&buf, "|N");
		else
			appendStringInfo(&buf, "|%d:%s", (int) strlen(fields[i]), fields[i]);
	}
	Sha256(buf.data, buf.len, out);
	pfree(buf.data);
}

/* ByteaDatum wraps a digest as a bytea Datum */
Datum
ByteaDatum(const uint8 *bytes, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), bytes, len);
	return PointerGetDatum(b);
}

/* IsoTime spells a time as ISO 8601 in UTC, whatever the session's settings */
char *
IsoTime(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(t) || timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		return pstrdup("infinity");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year, tm.tm_mon,
					tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

/* SetAuditLockTag names the lock that serialises writers of the chain */
void
SetAuditLockTag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, 0, PIPELINE_AUDIT_LOCK_CLASS);
}

/* AuditLogRelid returns pipeline.audit_log */
Oid
AuditLogRelid(void)
{
	Oid			nsp = get_namespace_oid(PIPELINE_SCHEMA, false);
	Oid			relid = get_relname_relid("audit_log", nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "pipeline.audit_log does not exist");
	return relid;
}

/* AuditAnchorRelid returns pipeline.audit_anchor, InvalidOid before 0.2.0 */
Oid
AuditAnchorRelid(void)
{
	Oid			nsp = get_namespace_oid(PIPELINE_SCHEMA, true);

	return OidIsValid(nsp) ? get_relname_relid("audit_anchor", nsp) : InvalidOid;
}

/*
 * ReadLastRow reads the seq and hash of the row with the greatest seq of a
 * table keyed by seq (the log or its anchors), backwards through the
 * primary key with the latest snapshot; false when the table is empty.
 */
static bool
ReadLastRow(Oid relid, int64 *seq, uint8 *hash)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pkey = RelationGetPrimaryKeyIndex(rel);
	Relation	idx = index_open(pkey, AccessShareLock);
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	IndexScanDesc scan = index_beginscan(rel, idx, snap, 0, 0);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	AttrNumber	hash_att = get_attnum(relid, "hash");
	bool		found = false;

	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;
		bytea	   *h;

		found = true;
		*seq = DatumGetInt64(slot_getattr(slot, 1, &isnull));
		h = DatumGetByteaPP(slot_getattr(slot, hash_att, &isnull));
		if (!isnull && VARSIZE_ANY_EXHDR(h) == PG_SHA256_DIGEST_LENGTH)
			memcpy(hash, VARDATA_ANY(h), PG_SHA256_DIGEST_LENGTH);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	UnregisterSnapshot(snap);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * ReadAuditHead returns the seq and hash of the last entry: of the log, or,
 * when a prune removed every entry, of the latest anchor (0 and a zero hash
 * for a log that never had any). The caller holds the chain lock, so every
 * earlier writer has ended and the latest snapshot sees exactly the
 * committed chain (plus this transaction's own entries).
 */
int64
ReadAuditHead(uint8 *hash)
{
	int64		seq = 0;
	Oid			anchors;

	memset(hash, 0, PG_SHA256_DIGEST_LENGTH);
	if (ReadLastRow(AuditLogRelid(), &seq, hash))
		return seq;
	anchors = AuditAnchorRelid();
	if (OidIsValid(anchors) && ReadLastRow(anchors, &seq, hash))
		return seq;
	return 0;
}

/* FillSessionFields sets who did it: session, current role, session role */
void
FillSessionFields(AuditEntry *e)
{
	if (e->f[AF_SESSION_ID] == NULL)
		e->f[AF_SESSION_ID] = psprintf("%lx.%x", (long) MyStartTime, MyProcPid);
	if (e->f[AF_ROLE_NAME] == NULL)
		e->f[AF_ROLE_NAME] = GetUserNameFromId(GetUserId(), false);
	if (e->f[AF_SESSION_ROLE] == NULL)
		e->f[AF_SESSION_ROLE] = GetUserNameFromId(GetSessionUserId(), false);
}

/*
 * AppendAuditEntries appends entries to the chain in the current
 * transaction, under the chain lock (held to the end of the transaction).
 * Callers are connected to SPI.
 */
void
AppendAuditEntries(AuditEntry *entries, int n)
{
	LOCKTAG		tag;
	uint8		prev[PG_SHA256_DIGEST_LENGTH];
	int64		seq;

	for (int i = 0; i < n; i++)
	{
		FillSessionFields(&entries[i]);
		for (int f = AF_BEFORE; f <= AF_DETAILS; f++)
			entries[i].f[f] = CanonicalJson(entries[i].f[f]);
	}
	SetAuditLockTag(&tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	seq = ReadAuditHead(prev);
	for (int i = 0; i < n; i++)
	{
		AuditEntry *e = &entries[i];
		TimestampTz now = GetCurrentTimestamp();
		uint8		hash[PG_SHA256_DIGEST_LENGTH];
		Oid			types[16] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID,
			TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID, JSONBOID, JSONBOID,
		JSONBOID, BYTEAOID, BYTEAOID};
		Datum		values[16];
		char		nulls[16];
		static const int field_param[AF_NFIELDS] = {2, 3, 4, 5, 6, 7, 10, 11, 12, 13};

		seq++;
		EntryHash(prev, seq, now, e->pipeline_id, e->run_id, e->f, hash);
		memset(nulls, ' ', sizeof(nulls));
		values[0] = Int64GetDatum(seq);
		values[1] = TimestampTzGetDatum(now);
		for (int f = 0; f < AF_NFIELDS; f++)
		{
			int			p = field_param[f];

			if (e->f[f] == NULL)
			{
				values[p] = (Datum) 0;
				nulls[p] = 'n';
			}
			else if (types[p] == JSONBOID)
				values[p] = DirectFunctionCall1(jsonb_in, CStringGetDatum(e->f[f]));
			else
				values[p] = CStringGetTextDatum(e->f[f]);
		}
		values[8] = Int64GetDatum(e->pipeline_id);
		nulls[8] = e->pipeline_id > 0 ? ' ' : 'n';
		values[9] = Int64GetDatum(e->run_id);
		nulls[9] = e->run_id > 0 ? ' ' : 'n';
		values[14] = ByteaDatum(prev, PG_SHA256_DIGEST_LENGTH);
		values[15] = ByteaDatum(hash, PG_SHA256_DIGEST_LENGTH);
		ExecKeptPlan(&audit_insert_plan, AUDIT_INSERT_SQL, 16, types, values, nulls);
		memcpy(prev, hash, PG_SHA256_DIGEST_LENGTH);
	}
}

/* FlushPendingEntries appends the queued entries; called at pre-commit */
static void
FlushPendingEntries(void)
{
	List	   *list = pending_entries;
	AuditEntry *entries;
	ListCell   *lc;
	int			n = 0;

	pending_entries = NIL;
	if (list == NIL)
		return;
	entries = palloc(sizeof(AuditEntry) * list_length(list));
	foreach(lc, list)
		entries[n++] = ((PendingEntry *) lfirst(lc))->e;
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	AppendAuditEntries(entries, n);
	PopActiveSnapshot();
	SPI_finish();
}

/* AuditXactCallback appends the queued entries at pre-commit, or forgets them */
static void
AuditXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			FlushPendingEntries();
			break;
		default:
			/* commit, abort, prepare: the list went with TopTransactionContext */
			pending_entries = NIL;
			break;
	}
}

/* AuditSubXactCallback drops the entries of a rolled back subtransaction */
static void
AuditSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_entries)
			if (((PendingEntry *) lfirst(lc))->subid == mySubid)
				((PendingEntry *) lfirst(lc))->subid = parentSubid;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_entries)
			if (((PendingEntry *) lfirst(lc))->subid == mySubid)
				pending_entries = foreach_delete_current(pending_entries, lc);
	}
}

/* CopyText copies an optional string into the current context */
static const char *
CopyText(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

/*
 * QueueAuditEntries records entries to be appended when the transaction
 * commits. Who did it (session and roles) is taken now.
 */
void
QueueAuditEntries(AuditEntry *entries, int n)
{
	MemoryContext old;

	if (!audit_callbacks_registered)
	{
		RegisterXactCallback(AuditXactCallback, NULL);
		RegisterSubXactCallback(AuditSubXactCallback, NULL);
		audit_callbacks_registered = true;
	}
	for (int i = 0; i < n; i++)
	{
		FillSessionFields(&entries[i]);
		for (int f = AF_BEFORE; f <= AF_DETAILS; f++)
			entries[i].f[f] = CanonicalJson(entries[i].f[f]);
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	for (int i = 0; i < n; i++)
	{
		PendingEntry *pe = palloc0(sizeof(PendingEntry));

		for (int f = 0; f < AF_NFIELDS; f++)
			pe->e.f[f] = CopyText(entries[i].f[f]);
		pe->e.pipeline_id = entries[i].pipeline_id;
		pe->e.run_id = entries[i].run_id;
		pe->subid = GetCurrentSubTransactionId();
		pending_entries = lappend(pending_entries, pe);
	}
	MemoryContextSwitchTo(old);
}
