/*-------------------------------------------------------------------------
 *
 * src/recorders/autonomous.c
 *
 * The recorders' one out-of-transaction writer. What must survive the
 * rollback of the caller's transaction is handed, in a dynamic shared
 * memory segment, to a short-lived dynamic background worker, which
 * connects to the same database as the extension owner, writes it in a
 * transaction of its own, commits and exits. Two things are written so:
 *
 * - a failed run whose caller's transaction rolls back (the engine's
 *   RunGuarded): the message is the flat serialisation of its RunRecord,
 *   with the caller's session, and the worker runs the one writer of a
 *   run's records on it (RecordRunOutcome, run_outcome.c): run record,
 *   run_failed alert, lineage row and audit entries, in one worker and one
 *   transaction ("pg_pipeline failure recorder");
 * - the refusals a backend without a launcher counts itself
 *   (audit_refusals.c): the message is their audit entries, which the
 *   worker appends to the chain ("pg_pipeline audit recorder").
 *
 * The caller waits for the worker, so that the record exists by the time
 * the caller sees its error, unless the worker would wait for the caller:
 * when the caller holds the chain lock, or a lock on the audit log that
 * conflicts with the worker's INSERT (RecorderWouldWaitForUs); what it
 * writes then lands right after the caller's transaction ends. The segment
 * stays pinned until the worker has attached it, so that it outlives a
 * caller that does not wait. Dynamic workers need no
 * shared_preload_libraries; they need a free slot under
 * max_worker_processes. Without one, a WARNING says what was not written,
 * and the caller goes on (a failed run's error is still raised).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lock.h"

#include "pipeline/recorders.h"
#include "audit_internal.h"

PGDLLEXPORT void pipeline_recorder_main(Datum arg);

/* What a recorder worker is asked to write */
typedef enum RecorderTask
{
	RECORD_FAILED_RUN,			/* a session, then a RunRecord */
	APPEND_AUDIT_ENTRIES		/* a count, then the entries */
} RecorderTask;

/* How the worker of a task shows in the server log and pg_stat_activity */
static const struct
{
	const char *name;
	const char *activity;
}			recorder_tasks[] = {
	[RECORD_FAILED_RUN] = {"pg_pipeline failure recorder", "recording a failed pipeline run"},
	[APPEND_AUDIT_ENTRIES] = {"pg_pipeline audit recorder", "writing a pg_pipeline audit entry"},
};

/*
 * The message handed to the recorder worker: a header, then the task's
 * data, packed (scalars as bytes; strings as an int32 length, -1 for NULL,
 * then the bytes).
 */
typedef struct RecorderMessage
{
	Oid			database_id;
	Oid			role_id;
	RecorderTask task;
	bool		recorded;		/* set by the worker once it committed */
	Size		len;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} RecorderMessage;

/* How a hand-over went */
typedef enum RecorderResult
{
	RECORDER_NO_SLOT,			/* no worker could be started */
	RECORDER_NOT_WAITED,		/* started; it would have waited for us */
	RECORDER_UNFINISHED,		/* started, and ended without committing */
	RECORDER_RECORDED
} RecorderResult;

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

/* UnpackBytes copies the next size bytes of a message, advancing *p */
static void
UnpackBytes(char **p, void *dst, Size size)
{
	memcpy(dst, *p, size);
	*p += size;
}

/*
 * PackRunRecord flattens a RunRecord: the struct's bytes (its pointers are
 * replaced on unpacking), the pipeline's id, then the strings it points to.
 */
static void
PackRunRecord(StringInfo buf, RunRecord *run)
{
	appendBinaryStringInfo(buf, (char *) run, sizeof(RunRecord));
	appendBinaryStringInfo(buf, (char *) &run->def->id, sizeof(int64));
	PackString(buf, run->def->name);
	PackString(buf, run->def->source_schema);
	PackString(buf, run->def->source_table);
	PackString(buf, run->def->target_schema);
	PackString(buf, run->def->target_table);
	PackString(buf, run->def->lineage_column);
	PackString(buf, run->wm_from);
	PackString(buf, run->wm_to);
	PackString(buf, run->triggered_by);
	PackString(buf, run->message);
	PackString(buf, run->detail);
	PackString(buf, run->hint);
	PackString(buf, run->schema_changes);
	PackString(buf, run->failed_check);
}

/* UnpackRunRecord reads back what PackRunRecord wrote */
static RunRecord *
UnpackRunRecord(char **p)
{
	RunRecord  *run = palloc(sizeof(RunRecord));
	PipelineDef *def = palloc0(sizeof(PipelineDef));

	UnpackBytes(p, run, sizeof(RunRecord));
	UnpackBytes(p, &def->id, sizeof(int64));
	def->name = UnpackString(p);
	def->source_schema = UnpackString(p);
	def->source_table = UnpackString(p);
	def->target_schema = UnpackString(p);
	def->target_table = UnpackString(p);
	def->lineage_column = UnpackString(p);
	run->def = def;
	run->wm_from = UnpackString(p);
	run->wm_to = UnpackString(p);
	run->triggered_by = UnpackString(p);
	run->message = UnpackString(p);
	run->detail = UnpackString(p);
	run->hint = UnpackString(p);
	run->schema_changes = UnpackString(p);
	run->failed_check = UnpackString(p);
	return run;
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
 * StartRecorder hands a task's data to a recorder worker and, unless the
 * worker would wait for us, waits until it has written it.
 */
static RecorderResult
StartRecorder(RecorderTask task, StringInfo data)
{
	dsm_segment *seg;
	RecorderMessage *msg;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	RecorderResult result = RECORDER_NOT_WAITED;
	bool		wait = !RecorderWouldWaitForUs();

	seg = dsm_create(offsetof(RecorderMessage, data) + data->len, 0);
	msg = dsm_segment_address(seg);
	msg->database_id = MyDatabaseId;
	msg->role_id = ExtensionOwner();
	msg->task = task;
	msg->recorded = false;
	msg->len = data->len;
	memcpy(msg->data, data->data, data->len);

	InitPipelineWorker(&worker, "pipeline_recorder_main", recorder_tasks[task].name,
					   recorder_tasks[task].name);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	/* the worker unpins the segment once attached, so it outlives us if need be */
	dsm_pin_segment(seg);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_unpin_segment(dsm_segment_handle(seg));
		dsm_detach(seg);
		return RECORDER_NO_SLOT;
	}
	if (wait)
	{
		pid_t		pid;
		BgwHandleStatus status = WaitForBackgroundWorkerStartup(handle, &pid);

		if (status == BGWH_STARTED)
			status = WaitForBackgroundWorkerShutdown(handle);
		result = msg->recorded ? RECORDER_RECORDED : RECORDER_UNFINISHED;
	}
	dsm_detach(seg);
	return result;
}

/*
 * RecordFailedRunAutonomously writes a failed run's records (run_history,
 * alert, run_io, audit entries) in a recorder worker's transaction, in the
 * name of this session, so that they survive the rollback of ours.
 */
void
RecordFailedRunAutonomously(RunRecord *run)
{
	StringInfoData buf;
	AuditEntry	who;

	Assert(run->status == RUN_FAILED);
	memset(&who, 0, sizeof(who));
	FillSessionFields(&who);
	initStringInfo(&buf);
	PackString(&buf, who.f[AF_SESSION_ID]);
	PackString(&buf, who.f[AF_ROLE_NAME]);
	PackString(&buf, who.f[AF_SESSION_ROLE]);
	PackRunRecord(&buf, run);
	switch (StartRecorder(RECORD_FAILED_RUN, &buf))
	{
		case RECORDER_NO_SLOT:
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not record failed run %lld of pipeline \"%s\"",
							(long long) run->run_id, run->def->name),
					 errdetail("No background worker slot was free to write the record."),
					 errhint("Raise max_worker_processes.")));
			break;
		case RECORDER_UNFINISHED:
			ereport(WARNING,
					(errmsg("could not record failed run %lld of pipeline \"%s\"",
							(long long) run->run_id, run->def->name),
					 errdetail("The failure recorder did not finish; see the server log.")));
			break;
		case RECORDER_NOT_WAITED:
		case RECORDER_RECORDED:
			break;
	}
}

/*
 * WriteAuditAutonomously hands entries to a recorder worker, which appends
 * them in a transaction of its own. It returns false when no worker could
 * be started (a WARNING says so).
 */
bool
WriteAuditAutonomously(AuditEntry *entries, int n)
{
	StringInfoData buf;
	int32		count = n;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (char *) &count, sizeof(count));
	for (int i = 0; i < n; i++)
	{
		FillSessionFields(&entries[i]);
		for (int f = 0; f < AF_NFIELDS; f++)
			PackString(&buf, entries[i].f[f]);
		appendBinaryStringInfo(&buf, (char *) &entries[i].pipeline_id, sizeof(int64));
		appendBinaryStringInfo(&buf, (char *) &entries[i].run_id, sizeof(int64));
	}
	switch (StartRecorder(APPEND_AUDIT_ENTRIES, &buf))
	{
		case RECORDER_NO_SLOT:
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not write audit entry \"%s\" for \"%s\"",
							entries[0].f[AF_ACTION], entries[0].f[AF_OBJECT_NAME] ? entries[0].f[AF_OBJECT_NAME] : ""),
					 errdetail("No background worker slot was free to write it."),
					 errhint("Raise max_worker_processes.")));
			return false;
		case RECORDER_UNFINISHED:
			ereport(WARNING,
					(errmsg("could not write audit entry \"%s\"", entries[0].f[AF_ACTION]),
					 errdetail("The audit recorder did not finish; see the server log.")));
			break;
		case RECORDER_NOT_WAITED:
		case RECORDER_RECORDED:
			break;
	}
	return true;
}

/* UnpackAuditEntries reads back the entries WriteAuditAutonomously packed */
static AuditEntry *
UnpackAuditEntries(char **p, int *n)
{
	int32		count;
	AuditEntry *entries;

	UnpackBytes(p, &count, sizeof(count));
	entries = palloc0(sizeof(AuditEntry) * count);
	for (int i = 0; i < count; i++)
	{
		for (int f = 0; f < AF_NFIELDS; f++)
			entries[i].f[f] = UnpackString(p);
		UnpackBytes(p, &entries[i].pipeline_id, sizeof(int64));
		UnpackBytes(p, &entries[i].run_id, sizeof(int64));
	}
	*n = count;
	return entries;
}

/*
 * pipeline_recorder_main is the worker: attach the message, connect as the
 * extension owner, write what it holds in one transaction, commit, and
 * report success through the segment.
 */
void
pipeline_recorder_main(Datum arg)
{
	dsm_segment *seg;
	RecorderMessage *msg;
	char	   *p;
	RunRecord  *run = NULL;
	AuditEntry *entries = NULL;
	int			n = 0;

	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_pipeline recorder could not attach its message")));
	dsm_unpin_segment(dsm_segment_handle(seg));
	msg = dsm_segment_address(seg);
	BackgroundWorkerInitializeConnectionByOid(msg->database_id, msg->role_id, 0);

	p = msg->data;
	if (msg->task == RECORD_FAILED_RUN)
	{
		char	   *session_id = UnpackString(&p);
		char	   *role_name = UnpackString(&p);
		char	   *session_role = UnpackString(&p);

		AuditActFor(session_id, role_name, session_role);
		run = UnpackRunRecord(&p);
	}
	else
		entries = UnpackAuditEntries(&p, &n);

	BeginWorkerTransaction(recorder_tasks[msg->task].activity);
	if (run)
		(void) RecordRunOutcome(run);
	else
		AppendAuditEntries(entries, n);
	CommitWorkerTransaction();
	msg->recorded = true;
	dsm_detach(seg);
	proc_exit(0);
}
