/*-------------------------------------------------------------------------
 *
 * src/watermark.c
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
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "pg_pipeline.h"

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

/* WatermarkFromText parses watermark text as a value of the column's type */
Datum
WatermarkFromText(const char *text, Oid typid, int32 typmod)
{
	Oid			input;
	Oid			ioparam;

	getTypeInputInfo(typid, &input, &ioparam);
	return OidInputFunctionCall(input, (char *) text, ioparam, typmod);
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
