/*-------------------------------------------------------------------------
 *
 * src/recorders/audit_autonomous.c
 *
 * The audit log's out-of-transaction writer: the recorder background worker
 * and the message it is handed in a DSM segment. Entries that must survive
 * the rollback of the caller's transaction (a failed run, see
 * audit_entries.c; the refusals a backend counts itself, see
 * audit_refusals.c) are written by a short-lived dynamic background worker
 * in its own transaction, as failure_recorder.c does for the failed run's
 * record. When the caller itself already holds the chain lock, the worker
 * would wait for the caller's transaction to end; the caller then does not
 * wait for it, and the entry lands right after. The segment stays pinned
 * until the worker has attached it, so that it outlives a caller that does
 * not wait.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "pipeline/recorders/audit.h"
#include "audit_internal.h"

PGDLLEXPORT void pipeline_audit_recorder_main(Datum arg);

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

/* PackString appends a string (or NULL) to a message */
static void
PackString(StringInfo buf, const char *s)
{
	int32		len = s ? (int32) strlen(s) : -1;

	appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
	if (s)
		appendBinaryStringInfo(buf, s, len);
}

/* UnpackString reads the next string of a message, advancing *p */
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
bool
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
bool
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

	BeginWorkerTransaction("writing a pg_pipeline audit entry");
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
	CommitWorkerTransaction();
	msg->recorded = true;
	dsm_detach(seg);
	proc_exit(0);
}
