/*-------------------------------------------------------------------------
 *
 * src/audit.c
 *
 * The audit log: pipeline.audit_log, append-only and hash-chained. Every
 * registry change, every run (its start and its end, with counts), and
 * every refused action gets an entry holding the time, the session, the
 * current and session roles, the action, the object, the configuration
 * before and after, and a SHA-256 hash over the entry's content and the
 * hash of the entry before it. pipeline.verify_audit() walks the chain.
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
 * Entries that must survive the rollback of the caller's transaction (a
 * failed run) are written by a short-lived dynamic background worker in its
 * own transaction, as failure_recorder.c does for the failed run's record.
 * When the caller itself already holds the chain lock, the worker would
 * wait for the caller's transaction to end; the caller then does not wait
 * for it, and the entry lands right after.
 *
 * Refusals are coalesced, so that a role with no privileges cannot grow the
 * log or use up worker slots by calling in a loop. A refusal is counted in a
 * table keyed by (database, role, session role, action, object) and a window
 * of pipeline.audit_refusal_window: the window's first refusal gets an entry
 * of its own (count 1), the later ones one entry when the window closes
 * (their count, first and last time). With the launcher preloaded for the
 * database the table is in shared memory (protected by an LWLock) and only
 * the launcher writes its entries, in its pass, so a refusal starts no
 * worker; it survives the caller's rollback because it is not part of the
 * caller's transaction. Without a launcher the table is the backend's own,
 * and its entries go to a recorder worker: at most
 * LOCAL_RECORDERS_PER_WINDOW per backend and window, never while the
 * backend holds a lock the worker would wait for. Flushers of the shared
 * table take the chain lock first, so that one slot is never written twice.
 *
 * Retention. pipeline.prune_audit() (and the launcher, when
 * pipeline.audit_retention is set) removes the oldest entries, a prefix of
 * the chain, after checking that prefix links and hashes; it keeps an
 * anchor (the last removed entry's seq and hash) in pipeline.audit_anchor
 * and appends an audit_prune entry that records the anchor. verify_audit()
 * starts from the latest anchor and requires that entry. The append-only
 * trigger lets DELETE through only while the prune's own statements run
 * (audit_prune_active).
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
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_pipeline.h"
#include "launcher.h"

PIPELINE_FUNCTION(pipeline_audit_refuse);
PIPELINE_FUNCTION(pipeline_verify_audit);
PIPELINE_FUNCTION(pipeline_audit_head);
PIPELINE_FUNCTION(pipeline_prune_audit);
PIPELINE_FUNCTION(pipeline_flush_audit_refusals);

PGDLLEXPORT void pipeline_audit_recorder_main(Datum arg);

/* The text fields of an entry, in hash order */
enum
{
	AF_SESSION_ID,
	AF_ROLE_NAME,
	AF_SESSION_ROLE,
	AF_ACTION,
	AF_OBJECT_TYPE,
	AF_OBJECT_NAME,
	AF_OUTCOME,
	AF_BEFORE,					/* JSON */
	AF_AFTER,					/* JSON */
	AF_DETAILS,					/* JSON */
	AF_NFIELDS
};

/* One audit entry before it is appended */
typedef struct AuditEntry
{
	const char *f[AF_NFIELDS];	/* NULL for SQL NULL */
	int64		pipeline_id;	/* 0: none */
	int64		run_id;			/* 0: none */
} AuditEntry;

#define AUDIT_INSERT_SQL \
	"INSERT INTO pipeline.audit_log (seq, logged_at, session_id, role_name," \
	" session_role, action, object_type, object_name, pipeline_id, run_id," \
	" outcome, config_before, config_after, details, prev_hash, hash)" \
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"

static SPIPlanPtr audit_insert_plan = NULL;
static SPIPlanPtr run_io_insert_plan = NULL;

/* the batched run whose start entry is already written (committed apart) */
static int64 started_run_id = 0;

/* Entries waiting for their transaction's commit, in TopTransactionContext */
typedef struct PendingEntry
{
	AuditEntry	e;
	SubTransactionId subid;
} PendingEntry;

static List *pending_entries = NIL;
static bool audit_callbacks_registered = false;

static void AppendAuditEntries(AuditEntry *entries, int n);
static Oid	AuditAnchorRelid(void);
static int64 PruneAudit(Interval *age, int batch, const char *triggered_by, bool raise);
static void FillSessionFields(AuditEntry *e);
static char *CanonicalJson(const char *json);


/* ExecKeptPlan runs a statement through a plan prepared once per backend */
static void
ExecKeptPlan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
			 Datum *values, const char *nulls)
{
	RoleSwitch	sw;
	int			rc;
	int			nestlevel = PinSearchPath();

	BecomeCatalogOwner(&sw);
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "pg_pipeline could not prepare: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	RestoreRole(&sw);
	UnpinSearchPath(nestlevel);
	if (rc < 0)
		elog(ERROR, "pg_pipeline catalog statement failed: %s", SPI_result_code_string(rc));
}

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
 * and pipeline.verify_audit(), so they cannot drift apart.
 */
static void
EntryHash(const uint8 *prev, int64 seq, TimestampTz logged_at, int64 pipeline_id,
		  int64 run_id, const char *const *fields, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	StringInfoData buf;

	initStringInfo(&buf);
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
	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, prev, PG_SHA256_DIGEST_LENGTH) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256: %s", ctx ? pg_cryptohash_error(ctx) : "out of memory");
	pg_cryptohash_free(ctx);
	pfree(buf.data);
}

/* ByteaDatum wraps a digest as a bytea Datum */
static Datum
ByteaDatum(const uint8 *bytes, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), bytes, len);
	return PointerGetDatum(b);
}

/* HexDigest spells a digest in lower-case hex */
static char *
HexDigest(const uint8 *d, int len)
{
	char	   *s = palloc(len * 2 + 1);

	for (int i = 0; i < len; i++)
		sprintf(s + i * 2, "%02x", d[i]);
	return s;
}

/* SetAuditLockTag names the lock that serialises writers of the chain */
static void
SetAuditLockTag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, 0, PIPELINE_AUDIT_LOCK_CLASS);
}

static Oid
AuditLogRelid(void)
{
	Oid			nsp = get_namespace_oid(PIPELINE_SCHEMA, false);
	Oid			relid = get_relname_relid("audit_log", nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "pipeline.audit_log does not exist");
	return relid;
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
static int64
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
static void
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
static void
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

/* JsonString appends a JSON string or null */
static void
JsonString(StringInfo buf, const char *key, const char *value)
{
	if (key)
	{
		escape_json(buf, key);
		appendStringInfoChar(buf, ':');
	}
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

/* CountsJson spells a run's counts as JSON members (no braces) */
static void
CountsJson(StringInfo buf, const LoadCounts *c)
{
	appendStringInfo(buf, "\"rows_read\":%lld,\"rows_inserted\":%lld,\"rows_updated\":%lld,"
					 "\"rows_deleted\":%lld,\"rows_unchanged\":%lld,\"rows_rejected\":%lld",
					 (long long) c->read, (long long) c->inserted, (long long) c->updated,
					 (long long) c->deleted, (long long) c->unchanged, (long long) c->rejected);
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
static void
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

/*
 * RegistryChanged is the one call each registry function makes after its
 * change: it records a new config version when the configuration really
 * changed, refreshes the pipeline's lineage (create, alter), and appends
 * the audit entry with the configuration (or state) before and after.
 * value is the new watermark of reset, the value of any other action
 * (e.g. the cron expression of schedule, from issue 3), or NULL.
 */
void
RegistryChanged(const char *action, PipelineDef *def, const char *value)
{
	AuditEntry	e;
	StringInfoData before;
	StringInfoData after;
	char	   *prev_config = NULL;
	char	   *config = NULL;
	int			version = 0;

	memset(&e, 0, sizeof(e));
	e.f[AF_ACTION] = action;
	e.f[AF_OBJECT_TYPE] = "pipeline";
	e.f[AF_OBJECT_NAME] = def->name;
	e.f[AF_OUTCOME] = "ok";
	e.pipeline_id = def->id;
	initStringInfo(&before);
	initStringInfo(&after);

	if (strcmp(action, "create") == 0 || strcmp(action, "alter") == 0)
	{
		version = RecordConfigVersion(def, &prev_config, &config);
		RefreshPipelineLineage(def);
		e.f[AF_BEFORE] = prev_config;
		e.f[AF_AFTER] = config;
		e.f[AF_DETAILS] = psprintf("{\"config_version\":%d,\"new_version\":%s}", version,
								   (prev_config && strcmp(prev_config, config) == 0) ? "false" : "true");
	}
	else if (strcmp(action, "drop") == 0)
	{
		e.f[AF_BEFORE] = CanonicalConfig(def);
	}
	else if (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0)
	{
		e.f[AF_BEFORE] = def->active ? "{\"active\":true}" : "{\"active\":false}";
		e.f[AF_AFTER] = strcmp(action, "resume") == 0 ? "{\"active\":true}" : "{\"active\":false}";
	}
	else if (strcmp(action, "reset") == 0)
	{
		appendStringInfoChar(&before, '{');
		JsonString(&before, "watermark", def->watermark);
		appendStringInfoChar(&before, '}');
		appendStringInfoChar(&after, '{');
		JsonString(&after, "watermark", value);
		appendStringInfoChar(&after, '}');
		e.f[AF_BEFORE] = before.data;
		e.f[AF_AFTER] = after.data;
	}
	else
	{
		/* any other action (schedule, unschedule, ...): its value, if any */
		appendStringInfoChar(&after, '{');
		JsonString(&after, "value", value);
		appendStringInfoChar(&after, '}');
		e.f[AF_AFTER] = value ? after.data : NULL;
	}
	QueueAuditEntries(&e, 1);
}

/* CurrentConfigVersion reads the config version a pipeline is at now */
static int
CurrentConfigVersion(int64 pipeline_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull = true;
	Datum		d = (Datum) 0;

	values[0] = Int64GetDatum(pipeline_id);
	ExecCatalog("SELECT config_version FROM pipeline.pipeline WHERE pipeline_id = $1",
						 1, types, values, NULL, true);
	if (SPI_processed > 0)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(d);
}

/* RunStartEntry and RunEndEntry fill the two entries of one run */
static void
RunStartEntry(AuditEntry *e, RunSummary *run)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfo(&d, "{\"started_at\":\"%s\",", timestamptz_to_str(run->started_at));
	JsonString(&d, "triggered_by", run->triggered_by);
	appendStringInfoChar(&d, ',');
	JsonString(&d, "watermark_from", run->wm_from);
	if (run->parent_run_id > 0)
		appendStringInfo(&d, ",\"parent_run_id\":%lld", (long long) run->parent_run_id);
	appendStringInfoChar(&d, '}');
	memset(e, 0, sizeof(*e));
	e->f[AF_ACTION] = "run_start";
	e->f[AF_OBJECT_TYPE] = "run";
	e->f[AF_OBJECT_NAME] = run->def->name;
	e->f[AF_OUTCOME] = "ok";
	e->f[AF_DETAILS] = d.data;
	e->pipeline_id = run->def->id;
	e->run_id = run->run_id;
}

static void
RunEndEntry(AuditEntry *e, RunSummary *run, int version, int sqlerrcode, const char *message)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfoChar(&d, '{');
	CountsJson(&d, run->counts);
	appendStringInfo(&d, ",\"batches\":%d,", run->batches);
	JsonString(&d, "watermark_from", run->wm_from);
	appendStringInfoChar(&d, ',');
	JsonString(&d, "watermark_to", run->wm_to);
	if (version > 0)
		appendStringInfo(&d, ",\"config_version\":%d", version);
	if (sqlerrcode)
	{
		appendStringInfo(&d, ",\"sqlstate\":\"%s\",", unpack_sql_state(sqlerrcode));
		JsonString(&d, "message", message);
	}
	appendStringInfoChar(&d, '}');
	memset(e, 0, sizeof(*e));
	e->f[AF_ACTION] = "run_end";
	e->f[AF_OBJECT_TYPE] = "run";
	e->f[AF_OBJECT_NAME] = run->def->name;
	e->f[AF_OUTCOME] = run->status;
	e->f[AF_DETAILS] = d.data;
	e->pipeline_id = run->def->id;
	e->run_id = run->run_id;
}

/*
 * RecordRunStart writes the start entry of a batched run, which commits
 * with the run's 'running' record before its first batch.
 */
void
RecordRunStart(RunSummary *run)
{
	AuditEntry	e;

	RunStartEntry(&e, run);
	QueueAuditEntries(&e, 1);
	started_run_id = run->run_id;
}

/*
 * RecordRunEnd writes, in the run's transaction, the run's lineage row
 * (what it read and wrote, and the config version it ran with) and its
 * audit entries (queued for commit): both start and end for a plain run,
 * the end for a batched one.
 */
void
RecordRunEnd(RunSummary *run)
{
	AuditEntry	e[2];
	int			version = CurrentConfigVersion(run->def->id);
	Oid			types[12] = {INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID};
	Datum		values[12];
	char		nulls[12];

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(run->run_id);
	values[1] = Int64GetDatum(run->def->id);
	values[2] = Int32GetDatum(version);
	nulls[2] = version > 0 ? ' ' : 'n';
	values[3] = CStringGetTextDatum(quote_qualified_identifier(run->def->source_schema, run->def->source_table));
	values[4] = CStringGetTextDatum(quote_qualified_identifier(run->def->target_schema, run->def->target_table));
	values[5] = run->wm_from ? CStringGetTextDatum(run->wm_from) : (Datum) 0;
	nulls[5] = run->wm_from ? ' ' : 'n';
	values[6] = run->wm_to ? CStringGetTextDatum(run->wm_to) : (Datum) 0;
	nulls[6] = run->wm_to ? ' ' : 'n';
	values[7] = Int64GetDatum(run->counts->read);
	values[8] = Int64GetDatum(run->counts->inserted);
	values[9] = Int64GetDatum(run->counts->updated);
	values[10] = Int64GetDatum(run->counts->deleted);
	values[11] = run->def->lineage_column ? CStringGetTextDatum(run->def->lineage_column) : (Datum) 0;
	nulls[11] = run->def->lineage_column ? ' ' : 'n';
	ExecKeptPlan(&run_io_insert_plan,
				 "INSERT INTO pipeline.run_io (run_id, pipeline_id, config_version,"
				 " source_relation, target_relation, watermark_from, watermark_to,"
				 " rows_read, rows_inserted, rows_updated, rows_deleted, lineage_column)"
				 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
				 " ON CONFLICT (run_id) DO UPDATE SET config_version = excluded.config_version,"
				 " watermark_to = excluded.watermark_to, rows_read = excluded.rows_read,"
				 " rows_inserted = excluded.rows_inserted, rows_updated = excluded.rows_updated,"
				 " rows_deleted = excluded.rows_deleted",
				 12, types, values, nulls);

	RunEndEntry(&e[1], run, version, 0, NULL);
	if (started_run_id == run->run_id)
		QueueAuditEntries(&e[1], 1);
	else
	{
		RunStartEntry(&e[0], run);
		QueueAuditEntries(e, 2);
	}
}

/* RecordSkippedRunAudit notes a run that found another one in progress */
void
RecordSkippedRunAudit(RunSummary *run)
{
	AuditEntry	e;

	RunEndEntry(&e, run, 0, 0, NULL);
	e.f[AF_ACTION] = "run_skipped";
	e.f[AF_OUTCOME] = "skipped";
	e.f[AF_DETAILS] = "{\"reason\":\"another run of the pipeline is in progress\"}";
	QueueAuditEntries(&e, 1);
}

/* ---- autonomous entries ---------------------------------------------- */

/*
 * The message handed to the recorder worker: a header and a packed list of
 * strings (int32 length, -1 for NULL, then the bytes).
 */
typedef struct AuditMessage
{
	Oid			database_id;
	Oid			role_id;
	bool		recorded;
	int32		nentries;
	int32		has_run_io;
	Size		len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} AuditMessage;

static void
PackString(StringInfo buf, const char *s)
{
	int32		len = s ? (int32) strlen(s) : -1;

	appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
	if (s)
		appendBinaryStringInfo(buf, s, len);
}

static char *
UnpackString(char **p)
{
	int32		len;
	char	   *s;

	memcpy(&len, *p, sizeof(len));
	*p += sizeof(len);
	if (len < 0)
		return NULL;
	s = palloc(len + 1);
	memcpy(s, *p, len);
	s[len] = '\0';
	*p += len;
	return s;
}

/*
 * RecorderWouldWaitForUs tells whether a recorder worker would wait for this
 * transaction to end: when we hold the chain lock, or a lock on the audit
 * log that conflicts with its INSERT (a refused TRUNCATE holds ACCESS
 * EXCLUSIVE).
 */
static bool
RecorderWouldWaitForUs(void)
{
	LOCKTAG		tag;
	LOCKTAG		reltag;
	static const LOCKMODE blocking[] = {ShareLock, ShareRowExclusiveLock,
	ExclusiveLock, AccessExclusiveLock};

	SetAuditLockTag(&tag);
	if (LockHeldByMe(&tag, ExclusiveLock))
		return true;
	SET_LOCKTAG_RELATION(reltag, MyDatabaseId, AuditLogRelid());
	for (int i = 0; i < lengthof(blocking); i++)
		if (LockHeldByMe(&reltag, blocking[i]))
			return true;
	return false;
}

/*
 * WriteAutonomously hands entries (and optionally a run_io row as JSON) to
 * a recorder worker, which appends them in a transaction of its own. It
 * returns false when no worker could be started (a WARNING says so).
 */
static bool
WriteAutonomously(AuditEntry *entries, int n, const char *run_io_json)
{
	StringInfoData buf;
	dsm_segment *seg;
	AuditMessage *msg;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;
	bool		wait;

	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
	{
		char		ids[64];

		FillSessionFields(&entries[i]);
		for (int f = 0; f < AF_NFIELDS; f++)
			PackString(&buf, entries[i].f[f]);
		snprintf(ids, sizeof(ids), "%lld", (long long) entries[i].pipeline_id);
		PackString(&buf, ids);
		snprintf(ids, sizeof(ids), "%lld", (long long) entries[i].run_id);
		PackString(&buf, ids);
	}
	PackString(&buf, run_io_json);

	seg = dsm_create(offsetof(AuditMessage, data) + buf.len, 0);
	msg = dsm_segment_address(seg);
	msg->database_id = MyDatabaseId;
	msg->role_id = ExtensionOwner();
	msg->recorded = false;
	msg->nentries = n;
	msg->has_run_io = run_io_json != NULL;
	msg->len = buf.len;
	memcpy(msg->data, buf.data, buf.len);

	/* wait for the worker unless it would wait for us */
	wait = !RecorderWouldWaitForUs();

	InitPipelineWorker(&worker, "pipeline_audit_recorder_main", "pg_pipeline audit recorder", "pg_pipeline audit recorder");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	/* the worker unpins the segment once attached, so it outlives us if need be */
	dsm_pin_segment(seg);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_unpin_segment(dsm_segment_handle(seg));
		dsm_detach(seg);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not write audit entry \"%s\" for \"%s\"",
						entries[0].f[AF_ACTION], entries[0].f[AF_OBJECT_NAME] ? entries[0].f[AF_OBJECT_NAME] : ""),
				 errdetail("No background worker slot was free to write it."),
				 errhint("Raise max_worker_processes.")));
		return false;
	}
	if (wait)
	{
		BgwHandleStatus status = WaitForBackgroundWorkerStartup(handle, &pid);

		if (status == BGWH_STARTED)
			status = WaitForBackgroundWorkerShutdown(handle);
		if (!msg->recorded)
			ereport(WARNING,
					(errmsg("could not write audit entry \"%s\"", entries[0].f[AF_ACTION]),
					 errdetail("The audit recorder did not finish; see the server log.")));
	}
	dsm_detach(seg);
	return true;
}

/*
 * pipeline_audit_recorder_main is the worker: attach the message, connect
 * as the extension owner, append the entries (and the failed run's lineage
 * row), commit, and report success through the segment.
 */
void
pipeline_audit_recorder_main(Datum arg)
{
	dsm_segment *seg;
	AuditMessage *msg;
	AuditEntry *entries;
	char	   *p;
	char	   *run_io;
	int			n;

	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pipeline audit recorder could not attach its message")));
	dsm_unpin_segment(dsm_segment_handle(seg));
	msg = dsm_segment_address(seg);
	BackgroundWorkerInitializeConnectionByOid(msg->database_id, msg->role_id, 0);

	n = msg->nentries;
	entries = palloc0(sizeof(AuditEntry) * n);
	p = msg->data;
	for (int i = 0; i < n; i++)
	{
		for (int f = 0; f < AF_NFIELDS; f++)
			entries[i].f[f] = UnpackString(&p);
		entries[i].pipeline_id = strtoll(UnpackString(&p), NULL, 10);
		entries[i].run_id = strtoll(UnpackString(&p), NULL, 10);
	}
	run_io = UnpackString(&p);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "writing a pg_pipeline audit entry");
	if (run_io)
	{
		Oid			types[1] = {JSONBOID};
		Datum		values[1];

		values[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(run_io));
		ExecCatalog("INSERT INTO pipeline.run_io SELECT * FROM"
							 " jsonb_populate_record(NULL::pipeline.run_io, $1)"
							 " ON CONFLICT (run_id) DO NOTHING",
							 1, types, values, NULL, false);
	}
	AppendAuditEntries(entries, n);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	msg->recorded = true;
	dsm_detach(seg);
	proc_exit(0);
}

/* ---- refusals, coalesced ----------------------------------------------- */

/* GUCs (AuditInit) */
int			audit_refusal_window = 60;	/* seconds */
int			audit_retention = 0;	/* seconds, 0: no automatic pruning */

#define REFUSAL_SLOTS				256 /* shared, for every database */
#define LOCAL_REFUSAL_SLOTS			32	/* one backend's; slot 0 takes overflow */
#define LOCAL_RECORDERS_PER_WINDOW	16
#define AUDIT_PRUNE_BATCH			10000
#define REFUSAL_OBJECT_LEN			(2 * NAMEDATALEN * 2 + 8)

/* The refusals of one key in one window */
typedef struct RefusalCount
{
	Oid			database_id;	/* InvalidOid: a free slot */
	uint32		generation;		/* bumped each time the slot is taken */
	bool		first_pending;	/* the window's first refusal awaits its entry */
	int64		pipeline_id;
	int64		count;			/* later refusals not written yet */
	TimestampTz window_start;	/* the first refusal */
	TimestampTz window_end;
	TimestampTz count_from;		/* the first of the later ones not written */
	TimestampTz last_at;
	char		role_name[NAMEDATALEN];
	char		session_role[NAMEDATALEN];
	char		session_id[32];
	char		action[64];
	char		object_type[32];
	char		object_name[REFUSAL_OBJECT_LEN];
	char		message[256];
} RefusalCount;

typedef struct AuditShared
{
	LWLock	   *lock;
	RefusalCount slots[REFUSAL_SLOTS];
} AuditShared;

/* What a flush wrote for one slot, applied to the slot once written */
typedef struct RefusalEmit
{
	int			slot;
	uint32		generation;
	bool		first;
	int64		count;
} RefusalEmit;

static AuditShared *audit_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static RefusalCount local_refusals[LOCAL_REFUSAL_SLOTS];
static bool local_exit_hook = false;
static TimestampTz local_budget_start = 0;
static int	local_recorders = 0;

/* set only while pipeline.prune_audit()'s own DELETE statements run */
static bool audit_prune_active = false;

/* AuditShmemRequest reserves the shared refusal table and its lock */
static void
AuditShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AuditShared)));
	RequestNamedLWLockTranche("pg_pipeline audit", 1);
}

/* AuditShmemStartup creates (or attaches to) the shared refusal table */
static void
AuditShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	audit_shared = ShmemInitStruct("pg_pipeline audit", sizeof(AuditShared), &found);
	if (!found)
	{
		memset(audit_shared, 0, sizeof(AuditShared));
		audit_shared->lock = &(GetNamedLWLockTranche("pg_pipeline audit"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * AuditInit defines the audit GUCs and, under shared_preload_libraries,
 * asks for the shared refusal table. LauncherInit calls it.
 */
void
AuditInit(void)
{
	DefineCustomIntVariable("pipeline.audit_refusal_window",
							"Refusals of one action on one object by one role within this window share one audit entry.",
							"The window's first refusal is logged at once; the later ones as one entry with their count when the window closes.",
							&audit_refusal_window, 60, 1, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("pipeline.audit_retention",
							"Audit entries older than this are pruned by the launcher (0: never).",
							"The chain stays verifiable from the anchor kept at the cut.",
							&audit_retention, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = AuditShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = AuditShmemStartup;
}

/* SameRefusalKey tells whether two slots count the same key */
static bool
SameRefusalKey(const RefusalCount *a, const RefusalCount *b)
{
	return a->database_id == b->database_id && a->pipeline_id == b->pipeline_id &&
		strcmp(a->role_name, b->role_name) == 0 &&
		strcmp(a->session_role, b->session_role) == 0 &&
		strcmp(a->action, b->action) == 0 &&
		strcmp(a->object_type, b->object_type) == 0 &&
		strcmp(a->object_name, b->object_name) == 0;
}

/*
 * CountRefusal counts a refusal in the open window of its key, or opens a
 * window in a free slot (*opened); false when every slot is taken.
 */
static bool
CountRefusal(RefusalCount *slots, int n, const RefusalCount *key, TimestampTz now,
			 bool *opened)
{
	RefusalCount *free_slot = NULL;
	uint32		generation;

	*opened = false;
	for (int i = 0; i < n; i++)
	{
		RefusalCount *s = &slots[i];

		if (s->database_id == InvalidOid)
		{
			if (free_slot == NULL)
				free_slot = s;
			continue;
		}
		if (s->window_end > now && SameRefusalKey(s, key))
		{
			if (s->count == 0)
				s->count_from = now;
			s->count++;
			s->last_at = now;
			memcpy(s->session_id, key->session_id, sizeof(s->session_id));
			return true;
		}
	}
	if (free_slot == NULL)
		return false;
	generation = free_slot->generation + 1;
	memcpy(free_slot, key, sizeof(RefusalCount));
	free_slot->generation = generation;
	free_slot->first_pending = true;
	free_slot->count = 0;
	free_slot->window_start = now;
	free_slot->last_at = now;
	free_slot->window_end = now + (TimestampTz) audit_refusal_window * USECS_PER_SEC;
	*opened = true;
	return true;
}

/* IsoTime spells a time as ISO 8601 in UTC, whatever the session's settings */
static char *
IsoTime(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(t) || timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		return pstrdup("infinity");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year, tm.tm_mon,
					tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

/* RefusalEntry fills the entry for count refusals of a slot, first to last */
static void
RefusalEntry(AuditEntry *e, const RefusalCount *s, int64 count, TimestampTz first,
			 TimestampTz last)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfoChar(&d, '{');
	JsonString(&d, "message", s->message);
	appendStringInfo(&d, ",\"count\":%lld,", (long long) count);
	JsonString(&d, "first_at", IsoTime(first));
	appendStringInfoChar(&d, ',');
	JsonString(&d, "last_at", IsoTime(last));
	appendStringInfoChar(&d, ',');
	JsonString(&d, "window_start", IsoTime(s->window_start));
	appendStringInfo(&d, ",\"window_seconds\":%lld}",
					 (long long) ((s->window_end - s->window_start) / USECS_PER_SEC));
	memset(e, 0, sizeof(*e));
	e->f[AF_SESSION_ID] = pstrdup(s->session_id);
	e->f[AF_ROLE_NAME] = pstrdup(s->role_name);
	e->f[AF_SESSION_ROLE] = pstrdup(s->session_role);
	e->f[AF_ACTION] = pstrdup(s->action);
	e->f[AF_OBJECT_TYPE] = pstrdup(s->object_type);
	e->f[AF_OBJECT_NAME] = s->object_name[0] ? pstrdup(s->object_name) : NULL;
	e->f[AF_OUTCOME] = "refused";
	e->f[AF_DETAILS] = d.data;
	e->pipeline_id = s->pipeline_id;
}

/*
 * CollectRefusals fills the entries due for a database's slots: each
 * window's first refusal, and the count of the later ones once the window
 * has closed (every window when force). entries and emits hold 2 * n.
 */
static int
CollectRefusals(RefusalCount *slots, int n, TimestampTz now, bool force,
				AuditEntry *entries, RefusalEmit *emits)
{
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		RefusalCount *s = &slots[i];

		if (s->database_id != MyDatabaseId)
			continue;
		if (s->first_pending)
		{
			RefusalEntry(&entries[k], s, 1, s->window_start, s->window_start);
			emits[k++] = (RefusalEmit) {i, s->generation, true, 1};
		}
		if (s->count > 0 && (force || s->window_end <= now))
		{
			RefusalEntry(&entries[k], s, s->count, s->count_from, s->last_at);
			emits[k++] = (RefusalEmit) {i, s->generation, false, s->count};
		}
	}
	return k;
}

/*
 * ApplyRefusals takes what was written off the slots (refusals counted
 * meanwhile stay), and frees the database's closed slots with nothing left.
 */
static void
ApplyRefusals(RefusalCount *slots, int n, RefusalEmit *emits, int k, TimestampTz now,
			  bool force)
{
	for (int j = 0; j < k; j++)
	{
		RefusalCount *s = &slots[emits[j].slot];

		if (s->database_id != MyDatabaseId || s->generation != emits[j].generation)
			continue;
		if (emits[j].first)
			s->first_pending = false;
		else
			s->count -= emits[j].count;
	}
	for (int i = 0; i < n; i++)
	{
		RefusalCount *s = &slots[i];

		if (s->database_id == MyDatabaseId && !s->first_pending && s->count == 0 &&
			(force || s->window_end <= now))
			s->database_id = InvalidOid;
	}
}

/* RefusalsDue tells, without writing, whether a flush would write anything */
static bool
RefusalsDue(RefusalCount *slots, int n, TimestampTz now, bool force)
{
	for (int i = 0; i < n; i++)
	{
		RefusalCount *s = &slots[i];

		if (s->database_id == MyDatabaseId &&
			(s->first_pending || force || s->window_end <= now))
			return true;
	}
	return false;
}

/*
 * FlushSharedRefusals appends, in the current transaction, the entries due
 * in the shared table for this database and returns how many. The chain
 * lock, taken first, makes flushers (the launcher, flush_audit_refusals)
 * take turns. Callers are connected to SPI.
 */
static int
FlushSharedRefusals(bool force)
{
	TimestampTz now = GetCurrentTimestamp();
	AuditEntry *entries;
	RefusalEmit *emits;
	LOCKTAG		tag;
	bool		due;
	int			k;

	if (audit_shared == NULL)
		return 0;
	LWLockAcquire(audit_shared->lock, LW_SHARED);
	due = RefusalsDue(audit_shared->slots, REFUSAL_SLOTS, now, force);
	LWLockRelease(audit_shared->lock);
	if (!due)
		return 0;
	SetAuditLockTag(&tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	entries = palloc(sizeof(AuditEntry) * 2 * REFUSAL_SLOTS);
	emits = palloc(sizeof(RefusalEmit) * 2 * REFUSAL_SLOTS);
	LWLockAcquire(audit_shared->lock, LW_SHARED);
	k = CollectRefusals(audit_shared->slots, REFUSAL_SLOTS, now, force, entries, emits);
	LWLockRelease(audit_shared->lock);
	if (k > 0)
		AppendAuditEntries(entries, k);
	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	ApplyRefusals(audit_shared->slots, REFUSAL_SLOTS, emits, k, now, force);
	LWLockRelease(audit_shared->lock);
	return k;
}

/* LogUnwrittenRefusals reports, at backend exit, refusals still only counted */
static void
LogUnwrittenRefusals(int code, Datum arg)
{
	for (int i = 0; i < LOCAL_REFUSAL_SLOTS; i++)
	{
		RefusalCount *s = &local_refusals[i];
		int64		n = s->count + (s->first_pending ? 1 : 0);

		if (s->database_id == InvalidOid || n == 0)
			continue;
		ereport(LOG,
				(errmsg("pg_pipeline: %lld refused \"%s\" on %s %s by role \"%s\" were not written to the audit log",
						(long long) n, s->action, s->object_type, s->object_name, s->role_name),
				 errdetail("The session ended within pipeline.audit_refusal_window of them, and no launcher serves the database.")));
		s->database_id = InvalidOid;
	}
}

/*
 * FlushLocalRefusals hands the entries due in the backend's own table to a
 * recorder worker, at most LOCAL_RECORDERS_PER_WINDOW times per window, and
 * never when the worker would wait for us (the entries then wait for a
 * later refusal, flush_audit_refusals or the session's end).
 */
static void
FlushLocalRefusals(TimestampTz now)
{
	AuditEntry	entries[2 * LOCAL_REFUSAL_SLOTS];
	RefusalEmit emits[2 * LOCAL_REFUSAL_SLOTS];
	int			k;

	if (local_budget_start + (TimestampTz) audit_refusal_window * USECS_PER_SEC <= now)
	{
		local_budget_start = now;
		local_recorders = 0;
	}
	if (local_recorders >= LOCAL_RECORDERS_PER_WINDOW || RecorderWouldWaitForUs())
		return;
	k = CollectRefusals(local_refusals, LOCAL_REFUSAL_SLOTS, now, false, entries, emits);
	if (k == 0)
		return;
	local_recorders++;
	if (WriteAutonomously(entries, k, NULL))
		ApplyRefusals(local_refusals, LOCAL_REFUSAL_SLOTS, emits, k, now, false);
}

/*
 * AuditRefusal records an attempt to do something the caller is not allowed
 * to do, just before the error is raised, in a way that outlives the
 * caller's rollback: counted in the launcher's shared table, or in the
 * backend's own table flushed by a recorder worker (see the file header).
 */
void
AuditRefusal(const char *action, const char *object_type, const char *object_name,
			 int64 pipeline_id, const char *message)
{
	RefusalCount key;
	TimestampTz now = GetCurrentTimestamp();
	bool		opened;

	memset(&key, 0, sizeof(key));
	key.database_id = MyDatabaseId;
	key.pipeline_id = pipeline_id;
	strlcpy(key.role_name, GetUserNameFromId(GetUserId(), false), sizeof(key.role_name));
	strlcpy(key.session_role, GetUserNameFromId(GetSessionUserId(), false), sizeof(key.session_role));
	snprintf(key.session_id, sizeof(key.session_id), "%lx.%x", (long) MyStartTime, MyProcPid);
	strlcpy(key.action, action, sizeof(key.action));
	strlcpy(key.object_type, object_type, sizeof(key.object_type));
	strlcpy(key.object_name, object_name ? object_name : "", sizeof(key.object_name));
	strlcpy(key.message, message ? message : "", sizeof(key.message));

	if (audit_shared != NULL && LauncherConfiguredFor(MyDatabaseId))
	{
		bool		counted;

		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		counted = CountRefusal(audit_shared->slots, REFUSAL_SLOTS, &key, now, &opened);
		LWLockRelease(audit_shared->lock);
		if (counted)
		{
			if (opened)
				WakeLauncher();
			return;
		}
		/* the shared table is full: count it here instead */
	}

	if (!local_exit_hook)
	{
		before_shmem_exit(LogUnwrittenRefusals, (Datum) 0);
		local_exit_hook = true;
	}
	if (!CountRefusal(local_refusals + 1, LOCAL_REFUSAL_SLOTS - 1, &key, now, &opened))
	{
		/* a full table: slot 0 counts every further refusal of the window */
		strlcpy(key.action, "(several)", sizeof(key.action));
		strlcpy(key.object_type, "several", sizeof(key.object_type));
		key.object_name[0] = '\0';
		key.pipeline_id = 0;
		strlcpy(key.message, "refusals of several actions or objects", sizeof(key.message));
		if (!CountRefusal(local_refusals, 1, &key, now, &opened))
		{
			local_refusals[0].count++;
			local_refusals[0].last_at = now;
		}
	}
	FlushLocalRefusals(now);
}

/*
 * AuditLauncherPass is the launcher's share of the audit work, once per
 * pass: write the refusals due in the shared table, and prune entries older
 * than pipeline.audit_retention every tenth of it (at least every
 * pipeline.check_interval, at most daily). It returns true when a full
 * batch was pruned, so that the launcher comes back soon for the rest.
 */
bool
AuditLauncherPass(void)
{
	static TimestampTz last_prune = 0;
	static bool more = false;
	TimestampTz now = GetCurrentTimestamp();
	int64		every_ms;
	Interval	age;

	(void) FlushSharedRefusals(false);
	if (audit_retention <= 0 || !OidIsValid(AuditAnchorRelid()))
		return false;
	every_ms = Max((int64) audit_retention * 100, (int64) pipeline_check_interval * 1000);
	every_ms = Min(every_ms, (int64) 86400 * 1000);
	if (!more && !TimestampDifferenceExceeds(last_prune, now, (int) every_ms))
		return false;
	last_prune = now;
	memset(&age, 0, sizeof(age));
	age.time = (TimeOffset) audit_retention * USECS_PER_SEC;
	more = PruneAudit(&age, AUDIT_PRUNE_BATCH, "launcher", false) >= AUDIT_PRUNE_BATCH;
	return more;
}

/*
 * AuditFailedRun records a failed run's start and end entries and its
 * lineage row autonomously, next to the failed run record that
 * failure_recorder.c writes.
 */
void
AuditFailedRun(FailedRun *run)
{
	RunSummary	s;
	AuditEntry	e[2];
	StringInfoData io;
	int			version;

	memset(&s, 0, sizeof(s));
	s.run_id = run->run_id;
	s.def = run->def;
	s.status = "failed";
	s.started_at = run->started_at;
	s.counts = &run->counts;
	s.batches = run->batches;
	s.wm_from = run->wm_from;
	s.wm_to = run->wm_to;
	s.triggered_by = run->triggered_by;
	s.parent_run_id = run->parent_run_id;
	/* the run's subtransaction is gone; the caller's transaction can still read */
	version = CurrentConfigVersion(run->def->id);

	RunStartEntry(&e[0], &s);
	RunEndEntry(&e[1], &s, version, run->sqlerrcode, run->message);
	initStringInfo(&io);
	appendStringInfo(&io, "{\"run_id\":%lld,\"pipeline_id\":%lld,", (long long) run->run_id,
					 (long long) run->def->id);
	if (version > 0)
		appendStringInfo(&io, "\"config_version\":%d,", version);
	JsonString(&io, "source_relation", quote_qualified_identifier(run->def->source_schema, run->def->source_table));
	appendStringInfoChar(&io, ',');
	JsonString(&io, "target_relation", quote_qualified_identifier(run->def->target_schema, run->def->target_table));
	appendStringInfoChar(&io, ',');
	JsonString(&io, "watermark_from", run->wm_from);
	appendStringInfoChar(&io, ',');
	JsonString(&io, "watermark_to", run->wm_to);
	appendStringInfo(&io, ",\"rows_read\":%lld,\"rows_inserted\":%lld,\"rows_updated\":%lld,\"rows_deleted\":%lld,",
					 (long long) run->counts.read, (long long) run->counts.inserted,
					 (long long) run->counts.updated, (long long) run->counts.deleted);
	JsonString(&io, "lineage_column", run->def->lineage_column);
	appendStringInfoChar(&io, '}');
	if (started_run_id == run->run_id)
		WriteAutonomously(&e[1], 1, io.data);
	else
		WriteAutonomously(e, 2, io.data);
}

/* ---- SQL functions ---------------------------------------------------- */

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

/*
 * A walk along the chain from an anchor (or from the start): what is
 * expected next, what was checked, and the first problem found. Messages
 * are allocated in mcxt, which outlives SPI.
 */
typedef struct ChainWalk
{
	MemoryContext mcxt;
	uint8		prev[PG_SHA256_DIGEST_LENGTH];
	int64		expected;
	int64		checked;
	int64		anchor_seq;		/* 0: no anchor */
	char	   *anchor_hex;
	bool		anchor_confirmed;
	int64		seq;			/* of the last good entry */
	TimestampTz logged_at;		/* of the last good entry */
	int64		bad_seq;
	const char *problem;		/* NULL: no problem so far */
	char	   *detail;
} ChainWalk;

/* StartWalk sets a walk to begin right after the anchor (seq 0: none) */
static void
StartWalk(ChainWalk *w, int64 anchor_seq, const uint8 *anchor_hash)
{
	memset(w, 0, sizeof(*w));
	w->mcxt = CurrentMemoryContext;
	w->anchor_seq = anchor_seq;
	w->expected = anchor_seq + 1;
	if (anchor_seq > 0)
	{
		memcpy(w->prev, anchor_hash, PG_SHA256_DIGEST_LENGTH);
		w->anchor_hex = HexDigest(anchor_hash, PG_SHA256_DIGEST_LENGTH);
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
static bool
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

/* AuditAnchorRelid returns pipeline.audit_anchor, InvalidOid before 0.2.0 */
static Oid
AuditAnchorRelid(void)
{
	Oid			nsp = get_namespace_oid(PIPELINE_SCHEMA, true);

	return OidIsValid(nsp) ? get_relname_relid("audit_anchor", nsp) : InvalidOid;
}

/*
 * ReadLatestAnchor returns the seq (0: none) and hash of the latest anchor,
 * through SPI with the caller's snapshot rules (read_only: the caller's).
 */
static int64
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
static Portal
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
static uint64
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
 * CheckAuditAdmin refuses (42501, logged) the audit maintenance functions
 * to anyone but a superuser or a member of the extension owner.
 */
static void
CheckAuditAdmin(const char *function)
{
	Oid			owner = ExtensionOwner();

	if (superuser() || has_privs_of_role(GetUserId(), owner))
		return;
	AuditRefusal(function, "audit_log", "pipeline.audit_log", 0,
				 psprintf("permission denied for %s", function));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for %s", function),
			 errdetail("Only a superuser or the owner of extension pg_pipeline (role \"%s\") may call pipeline.%s().",
					   GetUserNameFromId(owner, false), function),
			 errhint("Call it as the extension owner.")));
}

/*
 * PruneThreshold turns older_than into the time before which entries go,
 * measured from the transaction's start. An age beyond any timestamp means
 * that nothing is that old (-infinity).
 */
static TimestampTz
PruneThreshold(Interval *age)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	double		days = (double) age->month * DAYS_PER_MONTH + age->day +
		(double) age->time / USECS_PER_DAY;
	TimestampTz threshold;

	if (days > 1e6)
		return DT_NOBEGIN;
	if (days < -1e6)
		threshold = DT_NOEND;
	else
		threshold = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
															TimestampTzGetDatum(now),
															IntervalPGetDatum(age)));
	if (threshold > now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative"),
				 errdetail("older_than is %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(age)))),
				 errhint("Pass an age such as '90 days'; '0' prunes every entry logged before now.")));
	return threshold;
}

/*
 * CutChain deletes the entries first..w->seq and keeps their anchor, then
 * drops anchors older than the threshold but the new one. Only these
 * statements may delete (audit_prune_active); the flag never outlives them.
 */
static void
CutChain(int64 first, ChainWalk *w, Interval *age, TimestampTz threshold)
{
	Oid			dtypes[2] = {INT8OID, INT8OID};
	Datum		dvalues[2] = {Int64GetDatum(first), Int64GetDatum(w->seq)};
	Oid			atypes[6] = {INT8OID, BYTEAOID, TIMESTAMPTZOID, INT8OID, INT8OID, INTERVALOID};
	Datum		avalues[6];
	Oid			otypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		ovalues[2] = {Int64GetDatum(w->seq), TimestampTzGetDatum(threshold)};

	avalues[0] = Int64GetDatum(w->seq);
	avalues[1] = ByteaDatum(w->prev, PG_SHA256_DIGEST_LENGTH);
	avalues[2] = TimestampTzGetDatum(w->logged_at);
	avalues[3] = Int64GetDatum(first);
	avalues[4] = Int64GetDatum(w->checked);
	avalues[5] = IntervalPGetDatum(age);
	audit_prune_active = true;
	PG_TRY();
	{
		ExecCatalog("DELETE FROM pipeline.audit_log WHERE seq BETWEEN $1 AND $2",
					2, dtypes, dvalues, NULL, false);
		ExecCatalog("INSERT INTO pipeline.audit_anchor (seq, hash, logged_at, removed_from,"
					" entries_removed, older_than, cut_at) VALUES ($1, $2, $3, $4, $5, $6, now())",
					6, atypes, avalues, NULL, false);
		ExecCatalog("DELETE FROM pipeline.audit_anchor WHERE seq < $1 AND cut_at < $2",
					2, otypes, ovalues, NULL, false);
	}
	PG_FINALLY();
	{
		audit_prune_active = false;
	}
	PG_END_TRY();
}

/*
 * PruneAudit removes, in one batch, the oldest entries logged before the
 * age, a prefix of the chain after the latest anchor, and returns how many.
 * It checks the prefix first (links, hashes, the anchor): a broken chain is
 * never cut, so an anchor only ever stands for a verified prefix (raise:
 * XX001, else a WARNING and nothing pruned). Then, under the chain lock and
 * in the caller's transaction: delete the prefix, add the anchor (its last
 * entry's seq and hash), drop anchors older than the age but the new one,
 * and append an audit_prune entry that records the anchor.
 */
static int64
PruneAudit(Interval *age, int batch, const char *triggered_by, bool raise)
{
	TimestampTz threshold = PruneThreshold(age);
	uint8		anchor_hash[PG_SHA256_DIGEST_LENGTH];
	int64		anchor_seq;
	int64		first = 0;
	ChainWalk	w;
	Portal		portal;
	LOCKTAG		tag;
	bool		done = false;
	char	   *age_text = DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(age)));
	char	   *cut_hex;
	StringInfoData d;
	AuditEntry	e;

	SetAuditLockTag(&tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	anchor_seq = ReadLatestAnchor(anchor_hash, false);
	StartWalk(&w, anchor_seq, anchor_hash);
	portal = OpenChainCursor(anchor_seq, false);
	while (!done && FetchChain(portal, Min(batch, 1000)) > 0)
	{
		for (uint64 i = 0; i < SPI_processed && !done; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			bool		isnull;

			if (DatumGetTimestampTz(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull)) >= threshold ||
				w.checked >= batch || !WalkEntry(&w, tup, SPI_tuptable->tupdesc))
				done = true;
			else if (first == 0)
				first = w.seq;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	if (w.problem != NULL)
	{
		ereport(raise ? ERROR : WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("audit chain is broken at entry %lld: %s", (long long) w.bad_seq, w.problem),
				 errdetail("%s; entries are pruned only from a chain that verifies.", w.detail),
				 errhint("Find out what changed with SELECT * FROM pipeline.verify_audit(); nothing was pruned.")));
		return 0;
	}
	if (w.checked == 0)
		return 0;

	cut_hex = HexDigest(w.prev, PG_SHA256_DIGEST_LENGTH);
	CutChain(first, &w, age, threshold);

	initStringInfo(&d);
	appendStringInfo(&d, "{\"cut_seq\":%lld,", (long long) w.seq);
	JsonString(&d, "cut_hash", cut_hex);
	appendStringInfoChar(&d, ',');
	JsonString(&d, "cut_logged_at", IsoTime(w.logged_at));
	appendStringInfo(&d, ",\"removed_from\":%lld,\"entries_removed\":%lld,",
					 (long long) first, (long long) w.checked);
	JsonString(&d, "older_than", age_text);
	appendStringInfoChar(&d, ',');
	JsonString(&d, "triggered_by", triggered_by);
	appendStringInfoChar(&d, '}');
	memset(&e, 0, sizeof(e));
	e.f[AF_ACTION] = "audit_prune";
	e.f[AF_OBJECT_TYPE] = "audit_log";
	e.f[AF_OBJECT_NAME] = "pipeline.audit_log";
	e.f[AF_OUTCOME] = "ok";
	e.f[AF_DETAILS] = d.data;
	AppendAuditEntries(&e, 1);
	return w.checked;
}

/*
 * pipeline.prune_audit(older_than, batch_size) removes up to batch_size of
 * the oldest entries logged more than older_than ago (default:
 * pipeline.audit_retention) and keeps the anchor; see PruneAudit.
 */
Datum
pipeline_prune_audit(PG_FUNCTION_ARGS)
{
	Interval	age;
	int32		batch = PG_ARGISNULL(1) ? AUDIT_PRUNE_BATCH : PG_GETARG_INT32(1);
	int64		removed;

	CheckAuditAdmin("prune_audit");
	if (batch < 1 || batch > 1000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and 1000000"),
				 errdetail("batch_size is %d.", batch),
				 errhint("Prune in batches of thousands; call again while it returns batch_size.")));
	if (!PG_ARGISNULL(0))
		age = *PG_GETARG_INTERVAL_P(0);
	else if (audit_retention > 0)
	{
		memset(&age, 0, sizeof(age));
		age.time = (TimeOffset) audit_retention * USECS_PER_SEC;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no audit retention given"),
				 errdetail("older_than is NULL and pipeline.audit_retention is 0 (off)."),
				 errhint("Pass older_than, e.g. pipeline.prune_audit('90 days'), or set pipeline.audit_retention.")));
	SPI_connect();
	removed = PruneAudit(&age, batch, "prune_audit", true);
	SPI_finish();
	PG_RETURN_INT64(removed);
}

/*
 * pipeline.flush_audit_refusals() writes now, in the caller's transaction,
 * every refusal still only counted: those of this database in the shared
 * table and those of the calling session. Each window closes.
 */
Datum
pipeline_flush_audit_refusals(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();
	AuditEntry	entries[2 * LOCAL_REFUSAL_SLOTS];
	RefusalEmit emits[2 * LOCAL_REFUSAL_SLOTS];
	int			k;
	int64		written;

	CheckAuditAdmin("flush_audit_refusals");
	SPI_connect();
	written = FlushSharedRefusals(true);
	k = CollectRefusals(local_refusals, LOCAL_REFUSAL_SLOTS, now, true, entries, emits);
	if (k > 0)
		AppendAuditEntries(entries, k);
	ApplyRefusals(local_refusals, LOCAL_REFUSAL_SLOTS, emits, k, now, true);
	SPI_finish();
	PG_RETURN_INT64(written + k);
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
	values[1] = CStringGetTextDatum(HexDigest(hash, PG_SHA256_DIGEST_LENGTH));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
