/*-------------------------------------------------------------------------
 *
 * src/engine/type_widening.c
 *
 * Which type changes of a target column keep every value it can hold, so
 * that sync_all_columns (schema_drift.c) may make them without asking:
 *
 *   - integers to wider integers (smallint, integer, bigint), and to a
 *     numeric with room for all their digits; real to double precision;
 *   - varchar(n) and bit varying(n) to a larger n or none, numeric(p,s) to
 *     more integer digits and at least as many decimals (or none), and
 *     the time types to a higher fractional precision (or the default);
 *   - a binary-coercible change to a type without typmod in the same
 *     category, outside the numeric one (varchar to text, cidr to inet,
 *     a domain to its base type): the bytes stay what they are.
 *
 * Anything else (a narrowing, or a change to another kind of value) is not
 * a widening; sync_all_columns refuses it and fails the run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "parser/parse_coerce.h"
#include "utils/lsyscache.h"

#include "schema_drift.h"

/* IntegerDigits is how many decimal digits an integer type needs, 0 if none */
static int
IntegerDigits(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return 5;
		case INT4OID:
			return 10;
		case INT8OID:
			return 19;
		default:
			return 0;
	}
}

/* NumericPrecision and NumericScale read a numeric typmod (valid, not -1) */
static int
NumericPrecision(int32 typmod)
{
	return ((typmod - VARHDRSZ) >> 16) & 0xffff;
}

static int
NumericScale(int32 typmod)
{
	return (((typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;
}

/* NumericWidens: numeric(p,s) to numeric(p',s') keeps every value */
static bool
NumericWidens(int32 from_mod, int32 to_mod)
{
	if (to_mod < 0)
		return true;
	if (from_mod < 0)
		return false;
	return NumericScale(to_mod) >= NumericScale(from_mod) &&
		NumericPrecision(to_mod) - NumericScale(to_mod) >=
		NumericPrecision(from_mod) - NumericScale(from_mod);
}

/*
 * LengthWidens: a typmod that bounds a length or a precision (varchar, bit
 * varying, the time types) to one at least as large, or to none
 */
static bool
LengthWidens(int32 from_mod, int32 to_mod)
{
	return to_mod < 0 || (from_mod >= 0 && to_mod >= from_mod);
}

/* SameTypeWidens: a typmod change of one type that keeps every value */
static bool
SameTypeWidens(Oid typid, int32 from_mod, int32 to_mod)
{
	if (from_mod == to_mod)
		return true;
	switch (typid)
	{
		case NUMERICOID:
			return NumericWidens(from_mod, to_mod);
		case VARCHAROID:
		case VARBITOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case TIMEOID:
		case TIMETZOID:
			return LengthWidens(from_mod, to_mod);
		default:
			return false;
	}
}

/*
 * TypeWidens tells whether a column of type from (typmod from_mod) can
 * become type to (to_mod) without losing any value it can hold.
 */
bool
TypeWidens(Oid from, int32 from_mod, Oid to, int32 to_mod)
{
	char		from_cat;
	char		to_cat;
	bool		preferred;

	if (from == to)
		return SameTypeWidens(from, from_mod, to_mod);
	if (IntegerDigits(from) > 0 && IntegerDigits(to) > IntegerDigits(from))
		return true;
	if (IntegerDigits(from) > 0 && to == NUMERICOID)
		return to_mod < 0 ||
			NumericPrecision(to_mod) - NumericScale(to_mod) >= IntegerDigits(from);
	if (from == FLOAT4OID && to == FLOAT8OID)
		return true;
	get_type_category_preferred(from, &from_cat, &preferred);
	get_type_category_preferred(to, &to_cat, &preferred);
	return to_mod < 0 && from_cat == to_cat && from_cat != TYPCATEGORY_NUMERIC &&
		IsBinaryCoercible(from, to);
}
