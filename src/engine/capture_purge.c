/*-------------------------------------------------------------------------
 *
 * src/engine/capture_purge.c
 *
 * Purging captured changes that every consumer has loaded. The consumers
 * of a capture are the pipelines whose source reads its capture table
 * (pipeline.source_relation); each run of one commits its watermark, the
 * greatest change id it loaded, with its data. A change is purged when its
 * id is at most the least of those watermarks and it is older than the
 * longest capture_retention among them; nothing is purged while any
 * consumer has not loaded yet or does not read by the change id (a full
 * reload would miss what was purged), nor while there is no consumer.
 *
 * The purge locks the capture's catalog row first (FOR UPDATE), then reads
 * the watermarks with a snapshot taken after the lock: a pipeline being
 * registered on the capture holds that row too (api/capture_api.c), so a
 * purge either sees it or runs before it, and a new consumer of a capture
 * that has purged starts from a fresh snapshot of the table. The DELETE
 * runs as the capture table's owner, a batch at a time; each batch is
 * counted in pipeline.change_capture and audited (capture_purge). The
 * launcher does one batch per capture per pass (CapturePurgePass);
 * pipeline.purge_capture purges everything due at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "capture_internal.h"

#define CAPTURE_PURGE_BATCH 10000

/* PurgeBound is how far a capture's changes may go: through and retention */
typedef struct PurgeBound
{
	bool		allowed;
	int64		through;
	Interval   *retention;		/* NULL: none */
} PurgeBound;

/* ReadPurgeBound reads the watermarks and retentions of a capture's consumers */
static PurgeBound
ReadPurgeBound(ChangeCapture *c)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(c->capture_relid)};
	PurgeBound	b = {false, 0, NULL};
	bool		isnull;
	Datum		d;

	ExecCatalog("SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 AND pg_catalog.bool_and("
				"         coalesce(p.incremental_column OPERATOR(pg_catalog.=) '" CAPTURE_CHANGE_ID "'"
				"                  AND w.value OPERATOR(pg_catalog.~) '^-?[0-9]+$', false)),"
				"       pg_catalog.min(CASE WHEN w.value OPERATOR(pg_catalog.~) '^-?[0-9]+$'"
				"                      THEN w.value::pg_catalog.int8 END),"
				"       pg_catalog.max(p.capture_retention)"
				"  FROM pipeline.source_relation r"
				"  JOIN pipeline.pipeline p ON p.pipeline_id OPERATOR(pg_catalog.=) r.pipeline_id"
				"  LEFT JOIN pipeline.watermark w ON w.pipeline_id OPERATOR(pg_catalog.=) p.pipeline_id"
				" WHERE r.relid OPERATOR(pg_catalog.=) $1",
				1, types, values, NULL, false);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	b.allowed = !isnull && DatumGetBool(d);
	if (!b.allowed)
		return b;
	b.through = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	if (!isnull)
	{
		b.retention = palloc(sizeof(Interval));
		memcpy(b.retention, DatumGetIntervalP(d), sizeof(Interval));
	}
	return b;
}

/*
 * PurgeCapture deletes one batch (at most batch_rows) of the changes of a
 * capture that every consumer has loaded, past the retention, and returns
 * how many; more says whether the batch was full.
 */
int64
PurgeCapture(ChangeCapture *c, int64 batch_rows, bool *more)
{
	Oid			types[3] = {INT8OID, INTERVALOID, INT8OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	PurgeBound	b;
	OwnerContext ctx;
	int64		n;
	int64		last;
	bool		isnull;
	int			rc;

	*more = false;
	c = LookupCapture(c->relid, true);
	if (c == NULL)
		return 0;
	b = ReadPurgeBound(c);
	if (!b.allowed)
		return 0;
	values[0] = Int64GetDatum(b.through);
	values[1] = b.retention ? IntervalPGetDatum(b.retention) : (Datum) 0;
	nulls[1] = b.retention ? ' ' : 'n';
	values[2] = Int64GetDatum(batch_rows);
	EnterOwnerContext(&ctx, CaptureOwner(c));
	rc = SPI_execute_with_args(psprintf("WITH gone AS (DELETE FROM %1$s WHERE %2$s OPERATOR(pg_catalog.=) ANY (ARRAY("
										"   SELECT %2$s FROM %1$s WHERE %2$s OPERATOR(pg_catalog.<=) $1"
										"      AND ($2 IS NULL OR %3$s OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $2))"
										"    ORDER BY %2$s LIMIT $3)) RETURNING %2$s)"
										" SELECT pg_catalog.count(*), pg_catalog.max(%2$s) FROM gone",
										RelationNameOf(c->capture_relid), CAPTURE_CHANGE_ID, CAPTURE_AT),
							   3, types, values, nulls, false, 0);
	LeaveOwnerContext(&ctx);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not purge %s: %s", RelationNameOf(c->capture_relid), SPI_result_code_string(rc));
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (n == 0)
		return 0;
	last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	RecordCapturePurge(c->relid, n, last);
	AuditObjectChange("capture_purge", "table", RelationNameOf(c->relid), NULL,
					  psprintf("{\"capture_table\": \"%s\", \"changes\": %lld, \"through\": %lld}",
							   RelationNameOf(c->capture_relid), (long long) n, (long long) last));
	*more = n >= batch_rows;
	return n;
}

/* PurgeAllOfCapture purges every batch due of one capture (pipeline.purge_capture) */
int64
PurgeAllOfCapture(ChangeCapture *c)
{
	int64		total = 0;
	bool		more = true;

	while (more)
	{
		CHECK_FOR_INTERRUPTS();
		total += PurgeCapture(c, CAPTURE_PURGE_BATCH, &more);
	}
	return total;
}

/* One capture's batch in the launcher's pass, in a subtransaction of its own */
typedef struct PurgeTask
{
	Oid			relid;
	bool		more;
} PurgeTask;

static void
PurgeOne(void *arg)
{
	PurgeTask  *task = arg;
	ChangeCapture c = {0};

	c.relid = task->relid;
	(void) PurgeCapture(&c, CAPTURE_PURGE_BATCH, &task->more);
}

/*
 * CapturePurgePass is the launcher's share: one batch for each capture,
 * each in a subtransaction so that one that fails (a WARNING) keeps
 * neither the others nor the pass from their work. Returns whether a batch
 * was full (more to purge: come back soon).
 */
bool
CapturePurgePass(void)
{
	static SPIPlanPtr plan = NULL;	/* kept: the launcher asks every pass */
	List	   *relids = NIL;
	bool		more = false;
	ListCell   *lc;

	ExecKeptPlan(&plan, "SELECT relation::pg_catalog.oid FROM pipeline.change_capture", 0, NULL, NULL, NULL);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		relids = lappend_oid(relids, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	SPI_tuptable->tupdesc, 1, &isnull)));
	}
	foreach(lc, relids)
	{
		PurgeTask	task = {lfirst_oid(lc), false};
		int			sqlerrcode = TryInSubtransaction(PurgeOne, &task);

		if (sqlerrcode != 0)
			ereport(WARNING,
					(errmsg("pg_pipeline could not purge the capture of table %u: SQLSTATE %s",
							task.relid, unpack_sql_state(sqlerrcode))));
		more |= task.more;
	}
	return more;
}
