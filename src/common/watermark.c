/*-------------------------------------------------------------------------
 *
 * src/common/watermark.c
 *
 * Watermark values: the types an incremental column may have, conversion
 * between a column value and the canonical text kept in the catalog, and
 * ordering. The canonical text is the type's output with DateStyle ISO and
 * TimeZone UTC, so it reads the same in every session and parses back to
 * exactly the same value under any setting.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "pipeline/common.h"

/* IsTimeType: the incremental column types a lookback interval applies to */
bool
IsTimeType(Oid typid)
{
	typid = getBaseType(typid);
	return typid == TIMESTAMPOID || typid == TIMESTAMPTZOID || typid == DATEOID;
}

/* IsIncrementalType: time types and integers (including domains over them) */
bool
IsIncrementalType(Oid typid)
{
	Oid			base = getBaseType(typid);

	return IsTimeType(base) || base == INT2OID || base == INT4OID || base == INT8OID;
}

/*
 * WatermarkFromText parses watermark text as a value of the column's type.
 * The column may be a domain whose CHECK calls the owner's functions, so the
 * input function runs as the pipeline owner (EnterOwnerContext).
 */
Datum
WatermarkFromText(const char *text, Oid typid, int32 typmod, Oid owner)
{
	Oid			input;
	Oid			ioparam;
	OwnerContext ctx;
	Datum		value;

	getTypeInputInfo(typid, &input, &ioparam);
	EnterOwnerContext(&ctx, owner);
	value = OidInputFunctionCall(input, (char *) text, ioparam, typmod);
	LeaveOwnerContext(&ctx);
	return value;
}

/*
 * WatermarkIsFinite is false for the time types' infinity and -infinity:
 * such a value can never be a watermark, since every later row would lie
 * below +infinity and be skipped (docs/exactly-once.md).
 */
bool
WatermarkIsFinite(Datum value, Oid typid)
{
	switch (getBaseType(typid))
	{
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return !TIMESTAMP_NOT_FINITE(DatumGetTimestamp(value));
		case DATEOID:
			return !DATE_NOT_FINITE(DatumGetDateADT(value));
		default:
			return true;
	}
}

/* WatermarkIsPlusInfinity is true for a time type's +infinity only */
bool
WatermarkIsPlusInfinity(Datum value, Oid typid)
{
	switch (getBaseType(typid))
	{
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return TIMESTAMP_IS_NOEND(DatumGetTimestamp(value));
		case DATEOID:
			return DATE_IS_NOEND(DatumGetDateADT(value));
		default:
			return false;
	}
}

/*
 * WatermarkIsExtreme is true for a value at either end of the column's type
 * (its infinities, or an integer type's minimum or maximum): reset() refuses
 * these, since no later row could lie above the maximum, and the distance
 * from the minimum to the source's values overflows.
 */
bool
WatermarkIsExtreme(Datum value, Oid typid)
{
	switch (getBaseType(typid))
	{
		case INT2OID:
			return DatumGetInt16(value) == PG_INT16_MIN || DatumGetInt16(value) == PG_INT16_MAX;
		case INT4OID:
			return DatumGetInt32(value) == PG_INT32_MIN || DatumGetInt32(value) == PG_INT32_MAX;
		case INT8OID:
			return DatumGetInt64(value) == PG_INT64_MIN || DatumGetInt64(value) == PG_INT64_MAX;
		default:
			return !WatermarkIsFinite(value, typid);
	}
}

/* WatermarkToText renders a value in the canonical form kept in the catalog */
char *
WatermarkToText(Datum value, Oid typid)
{
	Oid			output;
	bool		varlena;
	int			nestlevel = NewGUCNestLevel();
	char	   *result;

	(void) set_config_option("DateStyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("TimeZone", "UTC", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	getTypeOutputInfo(typid, &output, &varlena);
	result = OidOutputFunctionCall(output, value);
	AtEOXact_GUC(true, nestlevel);
	return result;
}

/* CompareWatermarks orders two values of the column's type (btree order) */
int
CompareWatermarks(Datum a, Datum b, Oid typid, Oid collid)
{
	TypeCacheEntry *tc = lookup_type_cache(typid, TYPECACHE_CMP_PROC_FINFO);

	if (!OidIsValid(tc->cmp_proc_finfo.fn_oid))
		elog(ERROR, "type %u has no btree comparison function", typid);
	return DatumGetInt32(FunctionCall2Coll(&tc->cmp_proc_finfo, collid, a, b));
}
