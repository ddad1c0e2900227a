/*-------------------------------------------------------------------------
 *
 * src/recorders/audit_retention.c
 *
 * The audit log's retention: pipeline.prune_audit(), the anchors it keeps
 * at the cut (pipeline.audit_anchor), the pipeline.audit_retention GUC, and
 * AuditLauncherPass, the launcher's share of the audit work (writing the
 * shared refusals, pruning).
 *
 * pipeline.prune_audit() (and the launcher, when pipeline.audit_retention
 * is set) removes the oldest entries, a prefix of the chain, after checking
 * that prefix links and hashes with verify_audit()'s walk (audit_verify.c);
 * it keeps an anchor (the last removed entry's seq and hash) in
 * pipeline.audit_anchor and appends an audit_prune entry that records the
 * anchor. verify_audit() starts from the latest anchor and requires that
 * entry. The append-only trigger (audit_verify.c) lets DELETE through only
 * while the prune's own statements run (audit_prune_active).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "pipeline/recorders/audit.h"
#include "audit_internal.h"

PIPELINE_FUNCTION(pipeline_prune_audit);

#define AUDIT_PRUNE_BATCH			10000

/* GUC (AuditInit) */
static int	audit_retention = 0;	/* seconds, 0: no automatic pruning */

/* set only while pipeline.prune_audit()'s own DELETE statements run */
bool		audit_prune_active = false;

/*
 * AuditRetentionInit defines pipeline.audit_retention; AuditInit calls it.
 */
void
AuditRetentionInit(void)
{
	DefineCustomIntVariable("pipeline.audit_retention",
							"Audit entries older than this are pruned by the launcher (0: never).",
							"The chain stays verifiable from the anchor kept at the cut.",
							&audit_retention, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
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

	cut_hex = HexString(w.prev, PG_SHA256_DIGEST_LENGTH);
	CutChain(first, &w, age, threshold);

	initStringInfo(&d);
	appendStringInfo(&d, "{\"cut_seq\":%lld,", (long long) w.seq);
	AppendJsonMember(&d, "cut_hash", cut_hex, false);
	AppendJsonMember(&d, "cut_logged_at", IsoTime(w.logged_at), true);
	appendStringInfo(&d, ",\"removed_from\":%lld,\"entries_removed\":%lld,",
					 (long long) first, (long long) w.checked);
	AppendJsonMember(&d, "older_than", age_text, false);
	AppendJsonMember(&d, "triggered_by", triggered_by, true);
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
 * AuditLauncherPass is the launcher's share of the audit work, once per
 * pass: write the refusals due in the shared table, and prune entries older
 * than pipeline.audit_retention every tenth of it (at least every
 * pipeline.check_interval, which the launcher passes in seconds, at most
 * daily). It returns true when a full batch was pruned, so that the
 * launcher comes back soon for the rest.
 */
bool
AuditLauncherPass(int check_interval)
{
	static TimestampTz last_prune = 0;
	static bool more = false;
	TimestampTz now = GetCurrentTimestamp();
	int64		every_ms;
	Interval	age;

	(void) FlushSharedRefusals(false);
	if (audit_retention <= 0 || !OidIsValid(AuditAnchorRelid()))
		return false;
	every_ms = Max((int64) audit_retention * 100, (int64) check_interval * 1000);
	every_ms = Min(every_ms, (int64) 86400 * 1000);
	if (!more && !TimestampDifferenceExceeds(last_prune, now, (int) every_ms))
		return false;
	last_prune = now;
	memset(&age, 0, sizeof(age));
	age.time = (TimeOffset) audit_retention * USECS_PER_SEC;
	more = PruneAudit(&age, AUDIT_PRUNE_BATCH, "launcher", false) >= AUDIT_PRUNE_BATCH;
	return more;
}
