/*-------------------------------------------------------------------------
 *
 * src/recorders/audit_refusals.c
 *
 * The audit entries of refused actions (AuditRefusal), their coalescing in
 * shared memory and per session, pipeline.flush_audit_refusals(), the
 * check that guards the audit maintenance functions (CheckAuditAdmin), and
 * AuditInit: the audit GUCs (pipeline.audit_retention's definition is in
 * audit_retention.c) and the shared refusal table.
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "pipeline/recorders/audit.h"
#include "audit_internal.h"

PIPELINE_FUNCTION(pipeline_flush_audit_refusals);

/* GUC (AuditInit) */
static int	audit_refusal_window = 60;	/* seconds */

#define REFUSAL_SLOTS				256 /* shared, for every database */
#define LOCAL_REFUSAL_SLOTS			32	/* one backend's; slot 0 takes overflow */
#define LOCAL_RECORDERS_PER_WINDOW	16
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
	AuditRetentionInit();
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

/* RefusalEntry fills the entry for count refusals of a slot, first to last */
static void
RefusalEntry(AuditEntry *e, const RefusalCount *s, int64 count, TimestampTz first,
			 TimestampTz last)
{
	StringInfoData d;

	initStringInfo(&d);
	appendStringInfoChar(&d, '{');
	AppendJsonMember(&d, "message", s->message, false);
	appendStringInfo(&d, ",\"count\":%lld,", (long long) count);
	AppendJsonMember(&d, "first_at", IsoTime(first), false);
	AppendJsonMember(&d, "last_at", IsoTime(last), true);
	AppendJsonMember(&d, "window_start", IsoTime(s->window_start), true);
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
int
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
	if (WriteAuditAutonomously(entries, k))
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
 * CheckAuditAdmin refuses (42501, logged) the audit maintenance functions
 * to anyone but a superuser or a member of the extension owner.
 */
void
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
