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
 * refused action, a failed run) are written by a short-lived dynamic
 * background worker in its own transaction, as failure_recorder.c does for
 * the failed run's record. When the caller itself already holds the chain
 * lock, the worker would wait for the caller's transaction to end; the
 * caller then does not wait for it, and the entry lands right after.
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
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_pipeline.h"

PIPELINE_FUNCTION(pipeline_audit_refuse);
PIPELINE_FUNCTION(pipeline_verify_audit);
PIPELINE_FUNCTION(pipeline_audit_head);

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
 * ReadAuditHead returns the seq and hash of the last entry (0 and a zero
 * hash for an empty log), read backwards through the primary key with the
 * latest snapshot. The caller holds the chain lock, so every earlier writer
 * has ended and the latest snapshot sees exactly the committed chain (plus
 * this transaction's own entries).
 */
static int64
ReadAuditHead(uint8 *hash)
{
	Oid			relid = AuditLogRelid();
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pkey = RelationGetPrimaryKeyIndex(rel);
	Relation	idx = index_open(pkey, AccessShareLock);
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	IndexScanDesc scan = index_beginscan(rel, idx, snap, 0, 0);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int64		seq = 0;
	AttrNumber	hash_att = get_attnum(relid, "hash");

	memset(hash, 0, PG_SHA256_DIGEST_LENGTH);
	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;
		bytea	   *h;

		seq = DatumGetInt64(slot_getattr(slot, 1, &isnull));
		h = DatumGetByteaPP(slot_getattr(slot, hash_att, &isnull));
		if (!isnull && VARSIZE_ANY_EXHDR(h) == PG_SHA256_DIGEST_LENGTH)
			memcpy(hash, VARDATA_ANY(h), PG_SHA256_DIGEST_LENGTH);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	UnregisterSnapshot(snap);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return seq;
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
 * WriteAutonomously hands entries (and optionally a run_io row as JSON) to
 * a recorder worker, which appends them in a transaction of its own.
 */
static void
WriteAutonomously(AuditEntry *entries, int n, const char *run_io_json)
{
	StringInfoData buf;
	dsm_segment *seg;
	AuditMessage *msg;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;
	LOCKTAG		tag;
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

	/*
	 * Wait for the worker unless it would wait for us: when we hold the
	 * chain lock, or a lock on the audit log that conflicts with its INSERT
	 * (a refused TRUNCATE holds ACCESS EXCLUSIVE).
	 */
	SetAuditLockTag(&tag);
	wait = !LockHeldByMe(&tag, ExclusiveLock);
	{
		LOCKTAG		reltag;
		static const LOCKMODE blocking[] = {ShareLock, ShareRowExclusiveLock,
		ExclusiveLock, AccessExclusiveLock};

		SET_LOCKTAG_RELATION(reltag, MyDatabaseId, AuditLogRelid());
		for (int i = 0; i < lengthof(blocking); i++)
			if (LockHeldByMe(&reltag, blocking[i]))
				wait = false;
	}

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
		return;
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

/*
 * AuditRefusal records, autonomously, an attempt to do something the
 * caller is not allowed to do, just before the error is raised: the error
 * rolls back the caller's transaction, the entry stays.
 */
void
AuditRefusal(const char *action, const char *object_type, const char *object_name,
			 int64 pipeline_id, const char *message)
{
	AuditEntry	e;
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfoChar(&d, '{');
	JsonString(&d, "message", message);
	appendStringInfoChar(&d, '}');
	memset(&e, 0, sizeof(e));
	e.f[AF_ACTION] = action;
	e.f[AF_OBJECT_TYPE] = object_type;
	e.f[AF_OBJECT_NAME] = object_name;
	e.f[AF_OUTCOME] = "refused";
	e.f[AF_DETAILS] = d.data;
	e.pipeline_id = pipeline_id;
	WriteAutonomously(&e, 1, NULL);
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
 * DELETE and TRUNCATE on pipeline.audit_log, for every role, after logging
 * the attempt autonomously.
 */
Datum
pipeline_audit_refuse(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "pipeline._audit_refuse must be called as a trigger");
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "DELETE";
	else
		op = "TRUNCATE";
	SPI_connect();
	AuditRefusal(psprintf("audit_log %s", op), "audit_log", "pipeline.audit_log", 0,
				 "pipeline.audit_log is append-only");
	SPI_finish();
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("pipeline.audit_log is append-only"),
			 errdetail("%s on pipeline.audit_log is refused for every role; the attempt was logged.", op),
			 errhint("Audit entries are written by pg_pipeline only; read them, or verify them with pipeline.verify_audit().")));
	PG_RETURN_NULL();
}

/* VerifyResult fills the one row pipeline.verify_audit() returns */
static Datum
VerifyResult(FunctionCallInfo fcinfo, bool valid, int64 checked, int64 bad_seq,
			 const char *problem, const char *detail)
{
	TupleDesc	desc;
	Datum		values[5];
	bool		nulls[5] = {false, false, bad_seq == 0, problem == NULL, detail == NULL};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	values[0] = BoolGetDatum(valid);
	values[1] = Int64GetDatum(checked);
	values[2] = Int64GetDatum(bad_seq);
	values[3] = problem ? CStringGetTextDatum(problem) : (Datum) 0;
	values[4] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
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
 * pipeline.verify_audit() walks the chain in seq order and reports the first
 * entry that breaks it: a gap in seq (entries removed), an entry whose
 * content no longer matches its hash (changed), or an entry that does not
 * link to the one before it (inserted or moved out of order). Entries are
 * read through a cursor, a thousand at a time.
 */
Datum
pipeline_verify_audit(PG_FUNCTION_ARGS)
{
	uint8		prev[PG_SHA256_DIGEST_LENGTH];
	int64		expected = 1;
	int64		checked = 0;
	Portal		portal;
	RoleSwitch	sw;
	int			nestlevel;
	Datum		result = (Datum) 0;
	bool		done = false;
	MemoryContext outer = CurrentMemoryContext;

	memset(prev, 0, sizeof(prev));
	SPI_connect();
	nestlevel = PinSearchPath();
	BecomeCatalogOwner(&sw);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT seq, logged_at, session_id, role_name, session_role,"
									   " action, object_type, object_name, pipeline_id, run_id, outcome,"
									   " config_before, config_after, details, prev_hash, hash"
									   " FROM pipeline.audit_log ORDER BY seq",
									   0, NULL, NULL, NULL, true, 0);
	while (!done)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed && !done; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
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

			if (seq > expected)
			{
				MemoryContext old = MemoryContextSwitchTo(outer);

				result = VerifyResult(fcinfo, false, checked, expected, "removed",
									  seq == expected + 1
									  ? psprintf("entry %lld is missing: the entry after %lld is %lld",
												 (long long) expected, (long long) (expected - 1), (long long) seq)
									  : psprintf("entries %lld to %lld are missing",
												 (long long) expected, (long long) (seq - 1)));
				MemoryContextSwitchTo(old);
				done = true;
				break;
			}
			if (seq < expected)
			{
				MemoryContext old = MemoryContextSwitchTo(outer);

				result = VerifyResult(fcinfo, false, checked, seq, "out of order",
									  psprintf("entry %lld comes after entry %lld", (long long) seq,
											   (long long) (expected - 1)));
				MemoryContextSwitchTo(old);
				done = true;
				break;
			}
			EntryHash(prev_ok ? stored_prev : prev, seq, at, pipeline_id, run_id, fields, computed);
			if (!hash_ok || memcmp(computed, stored, PG_SHA256_DIGEST_LENGTH) != 0)
			{
				MemoryContext old = MemoryContextSwitchTo(outer);

				result = VerifyResult(fcinfo, false, checked, seq, "changed",
									  psprintf("the content of entry %lld does not match its hash", (long long) seq));
				MemoryContextSwitchTo(old);
				done = true;
				break;
			}
			if (!prev_ok || memcmp(stored_prev, prev, PG_SHA256_DIGEST_LENGTH) != 0)
			{
				MemoryContext old = MemoryContextSwitchTo(outer);

				result = VerifyResult(fcinfo, false, checked, seq, "out of order",
									  psprintf("entry %lld does not link to the entry before it: it was inserted, or the entries before it were replaced",
											   (long long) seq));
				MemoryContextSwitchTo(old);
				done = true;
				break;
			}
			memcpy(prev, stored, PG_SHA256_DIGEST_LENGTH);
			expected = seq + 1;
			checked++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	RestoreRole(&sw);
	UnpinSearchPath(nestlevel);
	SPI_finish();
	if (!done)
		result = VerifyResult(fcinfo, true, checked, 0, NULL, NULL);
	return result;
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
