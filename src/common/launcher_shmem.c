/*-------------------------------------------------------------------------
 *
 * src/common/launcher_shmem.c
 *
 * The launchers' shared memory: one slot per launcher (its database, its
 * latch, its pass statistics, its OpenLineage sender's latch), so that any
 * backend can wake its database's launcher, at once or when its
 * transaction commits (a run that queued downstream runs, a refusal to
 * write), and its sender when a transaction that wrote events commits. The
 * launchers and senders themselves (workers/) claim and fill the slots.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "pipeline/common.h"

char	   *pipeline_databases = NULL;
int			pipeline_max_workers = 4;
PipelineShared *pipeline_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool wake_at_commit = false;
static bool wake_sender_at_commit = false;
static bool xact_callback_registered = false;

/* PipelineShmemRequest reserves the launcher slots */
static void
PipelineShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PipelineShared)));
}

/* PipelineShmemStartup creates (or attaches to) the launcher slots */
static void
PipelineShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pipeline_shared = ShmemInitStruct("pg_pipeline", sizeof(PipelineShared), &found);
	if (!found)
	{
		memset(pipeline_shared, 0, sizeof(PipelineShared));
		SpinLockInit(&pipeline_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * DatabaseLatch returns the latch of this database's launcher, or of its
 * OpenLineage sender; NULL when none runs.
 */
static Latch *
DatabaseLatch(bool sender)
{
	Latch	   *latch = NULL;

	if (pipeline_shared == NULL)
		return NULL;
	SpinLockAcquire(&pipeline_shared->mutex);
	for (int i = 0; i < MAX_LAUNCHERS; i++)
	{
		LauncherSlot *slot = &pipeline_shared->launchers[i];

		if (slot->database_id == MyDatabaseId && slot->pid != 0)
			latch = !sender ? slot->latch : slot->sender_pid != 0 ? slot->sender_latch : NULL;
	}
	SpinLockRelease(&pipeline_shared->mutex);
	return latch;
}

/*
 * PipelineXactCallback wakes the launcher when a transaction that queued
 * runs commits, and the sender when one that wrote events commits.
 */
static void
PipelineXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT)
	{
		Latch	   *latch;

		if (wake_at_commit && (latch = DatabaseLatch(false)) != NULL)
			SetLatch(latch);
		if (wake_sender_at_commit && (latch = DatabaseLatch(true)) != NULL)
			SetLatch(latch);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		wake_at_commit = wake_sender_at_commit = false;
}

/* RegisterWakeCallback registers PipelineXactCallback once per process */
static void
RegisterWakeCallback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(PipelineXactCallback, NULL);
		xact_callback_registered = true;
	}
}

/* WakeLauncherAtCommit asks for this database's launcher to be woken at commit */
void
WakeLauncherAtCommit(void)
{
	RegisterWakeCallback();
	wake_at_commit = true;
}

/* WakeSenderAtCommit asks for this database's OpenLineage sender to be woken at commit */
void
WakeSenderAtCommit(void)
{
	RegisterWakeCallback();
	wake_sender_at_commit = true;
}

/* WakeLauncher sets the latch of this database's launcher now, if one runs */
void
WakeLauncher(void)
{
	Latch	   *latch = DatabaseLatch(false);

	if (latch)
		SetLatch(latch);
}

/* LauncherConfiguredFor tells whether a launcher serves the database */
bool
LauncherConfiguredFor(Oid database_id)
{
	bool		found = false;

	if (pipeline_shared == NULL)
		return false;
	SpinLockAcquire(&pipeline_shared->mutex);
	for (int i = 0; i < MAX_LAUNCHERS; i++)
		if (pipeline_shared->launchers[i].database_id == database_id)
			found = true;
	SpinLockRelease(&pipeline_shared->mutex);
	return found;
}


/* LauncherShmemInit installs the hooks that create the launcher slots */
void
LauncherShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = PipelineShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = PipelineShmemStartup;
}
