/*-------------------------------------------------------------------------
 *
 * src/engine/parallel_part.c
 *
 * The engine's side of one part of a parallel run (parallel_load.c has the
 * leader, workers/part_worker.c the process and its transactions), and
 * the recovery of parts a crash left prepared.
 *
 * A part loads each of its partitions with a load step of the serial
 * run's statements (planner.c) into the partition itself, over the
 * window's source rows that the partition's constraint takes
 * (PartitionPredicate, applied where the window is): an empty partition
 * takes the initial load's INSERT (initial_load.c), a filled one the MERGE.
 * The load runs as the pipeline owner with the row checks, masks,
 * erasure gate and counters of a serial run (load_step.c); the rows its
 * checks quarantine are written in the part's transaction with the run's id.
 *
 * A part queues no audit entry (the leader writes the run's): the chain's
 * lock, taken at PRE_PREPARE, would be held by the prepared part until the
 * decision, and the leader's own append at its PRE_COMMIT would wait for it.
 *
 * Presumed abort: a part whose run is recorded as succeeded (the leader's
 * commit wrote that record with the data's watermark) is committed, any
 * other is rolled back. ResolvePreparedParts decides so for the parts of
 * the pipelines whose run lock it holds or can take: no leader is then
 * left that could still commit. A run that loads calls it for its own
 * pipeline before the load (whatever its parallel_workers now: a part
 * left prepared holds its partition's locks), the launcher on every pass.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/ruleutils.h"

#include "pipeline/engine.h"
#include "planner_internal.h"
#include "run_internal.h"

/*
 * PartitionPredicate returns the constraint of a partition of the target,
 * its columns those of alias (the source rows: the partition column is
 * loaded as it is read, parallel_load.c checks)
 */
char *
PartitionPredicate(Oid partition, const char *alias)
{
	Expr	   *qual = get_partition_qual_relid(partition);

	if (qual == NULL)
		return "true";
	return deparse_expression((Node *) qual, deparse_context_for(alias, partition), true, false);
}

/*
 * The settings a part takes from its leader's session: those that change
 * what an expression of the load yields (a view's, a conversion's, a
 * check's), and the memory its sorts and hashes may use. A part connects
 * anew, with the server's; a serial run evaluates with the caller's.
 */
static const char *const leader_settings[] = {
	"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "lc_monetary", "lc_numeric",
	"lc_time", "bytea_output", "default_text_search_config", "xmlbinary", "xmloption",
	"work_mem", "maintenance_work_mem", "hash_mem_multiplier",
};

/*
 * SaveLeaderSettings writes the leader's settings into buf as name and
 * value pairs, each NUL-terminated, then an empty name; false when they
 * do not fit in size bytes
 */
bool
SaveLeaderSettings(char *buf, Size size)
{
	Size		used = 0;

	for (int i = 0; i < lengthof(leader_settings); i++)
	{
		const char *name = leader_settings[i];
		const char *value = GetConfigOption(name, false, false);
		Size		need = strlen(name) + strlen(value) + 2;

		if (used + need + 1 > size)
			return false;
		memcpy(buf + used, name, strlen(name) + 1);
		memcpy(buf + used + strlen(name) + 1, value, strlen(value) + 1);
		used += need;
	}
	buf[used] = '\0';
	return true;
}

/*
 * The settings a part sets for itself: it starts no parallel worker of its
 * own (a scan's or an index build's). The run's parallelism is its parts,
 * one per core it may take; a helper of a part would compete with the
 * other parts for those cores (docs/parallel.md).
 */
static const char *const part_settings[][2] = {
	{"max_parallel_workers_per_gather", "0"},
	{"max_parallel_maintenance_workers", "0"},
};

/*
 * TakePartSettings sets, in a part's transaction, the settings its leader
 * saved, then the part's own
 */
void
TakePartSettings(const char *buf)
{
	while (*buf != '\0')
	{
		const char *value = buf + strlen(buf) + 1;

		(void) set_config_option(buf, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET, true, ERROR, false);
		buf = value + strlen(value) + 1;
	}
	for (int i = 0; i < lengthof(part_settings); i++)
		(void) set_config_option(part_settings[i][0], part_settings[i][1], PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SET, true, ERROR, false);
}

/* PartitionIdent is a partition's name, qualified and quoted */
static char *
PartitionIdent(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}

/*
 * ScansForTwo: the part's load steps read the window as partition_rows.c
 * can share between two partitions: straight from a table, de-duplicated
 * (sorted). (A part's plan is its definition's: a replay, a backfill's
 * batch, a snapshot, a rollup or a Citus target never loads in parts.)
 */
static bool
ScansForTwo(LoadPlan *plan)
{
	return plan->needs_dedup && get_rel_relkind(plan->source_relid) == RELKIND_RELATION;
}

/*
 * LoadParallelPart loads the partitions of part (the i-th of the shared
 * list for each i % nparts == part) in the caller's transaction, each by a
 * load step of its own into the partition itself, under SHARE ROW
 * EXCLUSIVE on it (the load's lock on its target; never on the partitioned
 * target, which the other parts write too), and writes its counts and row checks' failures into its
 * slot. Where ScansForTwo, the step of each first of two partitions scans
 * the window for both, and the second's reads what it kept
 * (partition_rows.c). One step per part through the partitioned target
 * would scan it once too, but de-duplicate twice the rows in one sort, past
 * work_mem: it was measured no faster (1.8 s either way, bench/parallel.sh's
 * load), so it is not done.
 */
void
LoadParallelPart(ParallelShared *sh, int part)
{
	PartSlot   *slot = &sh->slots[part];
	PipelineDef *def = LoadPipelineById(sh->pipeline_id);
	LoadPlan   *plan;
	LoadColumn *inc;
	Datum		lower = (Datum) 0;
	Datum		upper;
	ListCell   *lc;

	if (def == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline %lld of a parallel run does not exist", (long long) sh->pipeline_id)));
	SetLineageRunId(sh->run_id);
	plan = BuildLoadPlan(def);
	CheckPipelinePrivileges(def, plan->source_relid, plan->target_relid, def->owner);
	if (list_length(plan->row_checks) != sh->nchecks)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the checks of pipeline \"%s\" changed during its parallel run", def->name),
				 errhint("Run it again.")));
	inc = plan->incremental;
	if (sh->has_lower)
		lower = WatermarkFromText(sh->lower, inc->typid, inc->typmod, def->owner);
	upper = WatermarkFromText(sh->upper, inc->typid, inc->typmod, def->owner);
	plan->part_marked = ScansForTwo(plan);
	ArmPartitionRows(plan->part_marked, !sh->has_lower);
	for (int i = part, n = 0; i < sh->npartitions; i += sh->nparts, n++)
	{
		/* a MERGE (or, empty, an INSERT) into the partition itself */
		plan->target_relid = sh->partitions[i];
		plan->target_ident = PartitionIdent(sh->partitions[i]);
		plan->part_relid = sh->partitions[i];
		/* the first of each two partitions' scan keeps the second's rows */
		plan->part_next_relid = (n % 2 == 0 && i + sh->nparts < sh->npartitions) ?
			sh->partitions[i + sh->nparts] : InvalidOid;
		plan->fill_indexes = !sh->build_indexes;
		ExecuteLoadStep(plan, sh->has_lower, lower, true, upper, &slot->counts);
		FlushRowChecks(plan, sh->run_id);
	}
	ArmPartitionRows(false, false);
	foreach(lc, plan->row_checks)
		slot->check_failed[foreach_current_index(lc)] = ((CheckDef *) lfirst(lc))->failed_rows;
}

/*
 * PauseParallelPart is pipeline.parallel_pause's hook: the last part waits
 * at point until it can take advisory lock PARALLEL_PAUSE_LOCK_KEY (which
 * a test holds), then goes on.
 */
void
PauseParallelPart(ParallelShared *sh, int part, ParallelPause point)
{
	LOCKTAG		tag;
	uint64		key = (uint64) PARALLEL_PAUSE_LOCK_KEY;

	if (sh->pause != point || part != sh->nparts - 1)
		return;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (key >> 32), (uint32) key, 1);
	(void) LockAcquire(&tag, ShareLock, true, false);
	LockRelease(&tag, ShareLock, true);
}

/* The part a recovery finishes, and how */
typedef struct FinishPart
{
	const char *gid;
	bool		commit;
} FinishPart;

/* FinishPartAsSuperuser commits or rolls back a prepared part, as its preparer (a superuser) */
static void
FinishPartAsSuperuser(void *arg)
{
	FinishPart *fp = arg;
	Oid			save_userid;
	int			save_sec;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	FinishPreparedTransaction(fp->gid, fp->commit);
	SetUserIdAndSecContext(save_userid, save_sec);
}

/* RunSucceeded: the run is recorded as succeeded (its decision is commit) */
static bool
RunSucceeded(int64 run_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(run_id)};

	ExecCatalog("SELECT 1 FROM pipeline.run_history WHERE run_id = $1 AND status = 'succeeded'",
				1, types, values, NULL, true);
	return SPI_processed > 0;
}

/*
 * ResolvePreparedParts commits or rolls back, as the catalog decides, the
 * prepared parts of pipeline_id (whose run lock the caller holds) or, with
 * 0, of every pipeline whose run lock it can take now (the launcher's
 * pass). Connected to SPI.
 */
void
ResolvePreparedParts(int64 pipeline_id)
{
	List	   *gids = NIL;
	ListCell   *lc;
	int			rc;

	if (max_prepared_xacts == 0)
		return;
	/* the parts' names, prepared by the bootstrap superuser the part workers connect as */
	rc = SPI_execute("SELECT gid FROM pg_catalog.pg_prepared_xacts"
					 " WHERE database OPERATOR(pg_catalog.=) pg_catalog.current_database()"
					 " AND gid OPERATOR(pg_catalog.~~) 'pg_pipeline:%'"
					 " AND owner OPERATOR(pg_catalog.=) (SELECT rolname FROM pg_catalog.pg_roles"
					 "  WHERE oid OPERATOR(pg_catalog.=) 10)", true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pg_pipeline could not list prepared transactions: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
		gids = lappend(gids, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	foreach(lc, gids)
	{
		char	   *gid = lfirst(lc);
		long long	pid;
		long long	run_id;
		int			part;
		FinishPart	fp;
		char	   *message = NULL;
		LOCKTAG		tag;
		bool		locked = false;

		if (sscanf(gid, "pg_pipeline:%lld:%lld:%d", &pid, &run_id, &part) != 3 ||
			(pipeline_id != 0 && pid != pipeline_id))
			continue;
		if (pipeline_id == 0)
		{
			if (!TryLockPipeline((int64) pid, false))
				continue;		/* its leader (or a later run) is running */
			locked = true;
		}
		fp.gid = gid;
		fp.commit = RunSucceeded((int64) run_id);
		if (TryInSubtransactionMessage(FinishPartAsSuperuser, &fp, &message) == 0)
			ereport(LOG,
					(errmsg("pg_pipeline %s part %d of run %lld (pipeline %lld), prepared before a crash",
							fp.commit ? "committed" : "rolled back", part, run_id, pid)));
		else
			ereport(LOG,
					(errmsg("pg_pipeline could not finish prepared part %s: %s", gid,
							message ? message : "unknown error")));
		if (locked)
		{
			SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (pid >> 32), (uint32) pid,
								 PIPELINE_RUN_LOCK_CLASS);
			LockRelease(&tag, ExclusiveLock, false);
		}
	}
}
