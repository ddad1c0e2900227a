/*-------------------------------------------------------------------------
 *
 * src/engine/typed_load.c
 *
 * Typed loads from text staging: a source column of a string type loads
 * into a target column of another type (an existing target's, or the type
 * column_types gave a created one) through that type's input function,
 * converted once at the boundary (docs/quality.md).
 *
 * PostgreSQL 15 has no soft input errors: an input function that refuses
 * a value raises. So a run first loads the whole window with plain casts
 * in its select list, inside a subtransaction: with good values that is
 * the cost of a hand-written cast load. Only when that load fails with a
 * data exception (class 22, or a domain's 23514/23502) and the pipeline's
 * on_conversion_error is quarantine, the subtransaction is rolled back and
 * the window is loaded again through the conversion gate: each row's
 * values go through their input functions in a subtransaction of the
 * row's own (pipeline._convert_row), and a row with a value that does not
 * convert is kept for quarantine, with a reason naming the column, the
 * value and the error, instead of failing the run. The gate shares the
 * row checks' tuplestore (row_checks.c), so the row counts, the
 * quarantine and the watermark still commit together.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "pipeline/engine.h"
#include "run_internal.h"

PIPELINE_FUNCTION(pipeline_convert_row);

/* The name a conversion failure has in a quarantined row's failed_checks */
#define CONVERSION_FAILURE "conversion"

/* IsStringType: a type (or a domain over one) of the string category */
static bool
IsStringType(Oid typid)
{
	return TypeCategory(getBaseType(typid)) == TYPCATEGORY_STRING;
}

/*
 * ColumnNeedsConversion tells whether a source column is converted into
 * its target column: the source holds strings and the target is of
 * another type, or a string type with a length limit (varchar(n)) or a
 * domain's constraints that a value must meet.
 */
bool
ColumnNeedsConversion(Oid source_typid, int32 source_typmod, Oid target_typid, int32 target_typmod)
{
	if (!IsStringType(source_typid))
		return false;
	if (target_typid == source_typid && (target_typmod < 0 || target_typmod == source_typmod))
		return false;
	if (IsStringType(target_typid))
		return target_typmod >= 0 || getBaseType(target_typid) != target_typid;
	return true;
}

/*
 * SetColumnConversion marks a load column converted when it needs it into
 * a target column of that type; a column converted to a type that is not a
 * string is loaded (compared, de-duplicated, checked) as that type.
 */
bool
SetColumnConversion(LoadColumn *col, Oid target_typid, int32 target_typmod, Oid target_collid)
{
	if (col->mask != NULL ||
		!ColumnNeedsConversion(col->typid, col->typmod, target_typid, target_typmod))
		return false;
	col->convert = true;
	col->convert_typid = target_typid;
	col->convert_typmod = target_typmod;
	if (!IsStringType(target_typid))
	{
		col->typid = target_typid;
		col->typmod = target_typmod;
		col->collid = target_collid;
	}
	return true;
}

/* TargetName spells the target of a pipeline for messages */
static char *
TargetName(PipelineDef *def)
{
	return quote_qualified_identifier(def->target_schema, def->target_table);
}

/*
 * CheckColumnTypesOption checks the column_types option against the
 * relations: each column is in the source (42703), is not masked (a mask
 * decides what is written), and has the declared type in the target
 * (42804), which it has when the pipeline created the target.
 */
void
CheckColumnTypesOption(PipelineDef *def, Oid source_relid, Oid target_relid)
{
	List	   *masks = ParseMasks(def->masks);
	ListCell   *lc;

	foreach(lc, ParseColumnTypes(def->column_types))
	{
		ColumnType *ct = lfirst(lc);
		AttrNumber	att = get_attnum(source_relid, ct->column);
		Oid			typid;
		int32		typmod;
		Oid			collid;

		if (att <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column_types names column \"%s\", which is not in the source", ct->column),
					 errdetail("Pipeline \"%s\" reads %s.", def->name,
							   quote_qualified_identifier(def->source_schema, def->source_table)),
					 errhint("Name columns of the source in column_types.")));
		if (FindMask(masks, ct->column))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" is both masked and typed", ct->column),
					 errdetail("Pipeline \"%s\" has a mask for it, which decides what the target holds.",
							   def->name),
					 errhint("Leave the column out of column_types, or out of masks.")));
		att = get_attnum(target_relid, ct->column);
		if (att <= 0)
			continue;			/* BuildLoadColumns reports it */
		get_atttypetypmodcoll(target_relid, att, &typid, &typmod, &collid);
		if (typid != ct->typid || (ct->typmod >= 0 && typmod != ct->typmod))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" is %s in column_types but %s in target %s", ct->column,
							format_type_with_typemod(ct->typid, ct->typmod),
							format_type_with_typemod(typid, typmod), TargetName(def)),
					 errdetail("column_types gives the types of a target the pipeline creates;"
							   " an existing target keeps its own."),
					 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE %s, or change column_types to match the target.",
							 TargetName(def), quote_identifier(ct->column),
							 format_type_with_typemod(ct->typid, ct->typmod))));
	}
}

/*
 * ConvertedValue is what the load reads for a column: a converted one is
 * cast to its target type (an I/O conversion: the type's input function);
 * into a string type the value stays a string, and the assignment to the
 * target checks its length and its domain's constraints.
 */
char *
ConvertedValue(LoadColumn *col, const char *ref)
{
	if (!col->convert || IsStringType(col->convert_typid))
		return (char *) ref;
	return psprintf("CAST(%s AS %s)", ref,
					format_type_extended(col->convert_typid, col->convert_typmod,
										 FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
}

/*
 * TypedSourceRows spells the source as the row checks see it: its rows
 * with converted columns converted, or the source itself without any.
 */
char *
TypedSourceRows(LoadPlan *plan)
{
	StringInfoData buf;
	ListCell   *lc;

	if (!plan->has_conversions)
		return plan->source_ident;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "(SELECT ");
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		appendStringInfo(&buf, "%s%s AS %s", foreach_current_index(lc) > 0 ? ", " : "",
						 ConvertedValue(col, psprintf("raw.%s", quote_identifier(col->name))),
						 quote_identifier(col->name));
	}
	appendStringInfo(&buf, " FROM %s AS raw)", plan->source_ident);
	return buf.data;
}

/*
 * AppendConversionGate appends the gate of a load that converts safely:
 * pipeline._convert_row(row, key, incremental value, quarantine id,
 * ARRAY[the converted columns' values as text]), true when every value
 * converts. identity spells the first four on alias (AppendRowIdentity).
 */
void
AppendConversionGate(StringInfo buf, LoadPlan *plan, const char *alias, const char *identity)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfo(buf, "pipeline._convert_row(%s, ARRAY[", identity);
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->convert)
			continue;
		appendStringInfo(buf, "%s%s.%s::pg_catalog.text", first ? "" : ", ", alias,
						 quote_identifier(col->name));
		first = false;
	}
	appendStringInfoString(buf, "])");
}

/*
 * IsConversionError: an error an input function or a domain raises for a
 * value (data exception, or a domain's check or not-null constraint).
 */
bool
IsConversionError(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
		sqlerrcode == ERRCODE_CHECK_VIOLATION || sqlerrcode == ERRCODE_NOT_NULL_VIOLATION;
}

/* A converted column of the gate's plan, with its input function and the row's value */
typedef struct GateValue
{
	LoadColumn *col;
	char	   *value;			/* NULL: SQL NULL, which converts */
} GateValue;

/* The values of one row the conversion gate tries, and how far it got */
typedef struct ConvertTry
{
	GateValue  *values;
	int			n;
	int			from;			/* the value being converted */
} ConvertTry;

/* ConvertValues converts t's values from t->from on, leaving t->from at a failing one */
static void
ConvertValues(void *arg)
{
	ConvertTry *t = arg;

	for (; t->from < t->n; t->from++)
	{
		GateValue  *v = &t->values[t->from];
		Oid			input;
		Oid			ioparam;

		if (v->value == NULL)
			continue;
		getTypeInputInfo(v->col->convert_typid, &input, &ioparam);
		(void) OidInputFunctionCall(input, v->value, ioparam, v->col->convert_typmod);
	}
}

/*
 * TryConvertFrom converts the values from index *from on, in one
 * subtransaction. It returns NULL when all convert; else the error of the
 * first that does not, whose index it leaves in *from (an error that is
 * not a value's is raised again). One subtransaction per row, not per
 * value, while the values are good.
 */
static char *
TryConvertFrom(GateValue *values, int n, int *from)
{
	ConvertTry	t = {values, n, *from};
	char	   *message = NULL;

	(void) TryInSubtransactionIf(ConvertValues, &t, IsConversionError, &message);
	*from = t.from;
	return message;
}

/*
 * pipeline._convert_row(row jsonb, key jsonb, incremental_value text,
 * quarantine_id bigint, "values" text[]) is the conversion gate: it tries
 * each value of the converted columns (in column order) with its type's
 * input function and typmod, in a subtransaction, and returns true when
 * all convert. Otherwise it keeps the row for quarantine with the reason,
 * one "column, value: error" per value that does not convert (values
 * redacted when the pipeline holds personal data), and returns false: the
 * row is not loaded.
 */
Datum
pipeline_convert_row(PG_FUNCTION_ARGS)
{
	LoadPlan   *plan = RowGatePlan();
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			nvalues = 0;
	GateValue  *values;
	ListCell   *lc;
	StringInfoData reason;

	if (plan == NULL || !plan->convert_safely || PG_ARGISNULL(0) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline._convert_row can only be called by the load statement of a run")));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	values = palloc(sizeof(GateValue) * list_length(plan->columns));
	foreach(lc, plan->columns)
	{
		LoadColumn *col = lfirst(lc);

		if (!col->convert)
			continue;
		if (nvalues >= n)
			elog(ERROR, "pg_pipeline conversion gate got %d values", n);
		values[nvalues].col = col;
		values[nvalues].value = nulls[nvalues] ? NULL : TextDatumGetCString(elems[nvalues]);
		nvalues++;
	}
	initStringInfo(&reason);
	for (int from = 0; from < nvalues; from++)
	{
		char	   *error = TryConvertFrom(values, nvalues, &from);

		if (error == NULL)
			break;
		if (plan->redact_reasons)
			appendStringInfo(&reason, "%scolumn \"%s\", value [redacted]: %s",
							 reason.len ? "; " : "", values[from].col->name, RedactQuoted(error));
		else
			appendStringInfo(&reason, "%scolumn \"%s\", value \"%s\": %s",
							 reason.len ? "; " : "", values[from].col->name, values[from].value, error);
	}
	if (reason.len == 0)
		PG_RETURN_BOOL(true);
	{
		Datum		failed = CStringGetTextDatum(CONVERSION_FAILURE);

		KeepRowForQuarantine(PointerGetDatum(construct_array(&failed, 1, TEXTOID, -1, false, TYPALIGN_INT)),
							 PG_GETARG_DATUM(0), PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1),
							 PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2), PG_ARGISNULL(2),
							 PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3), PG_ARGISNULL(3),
							 reason.data);
	}
	PG_RETURN_BOOL(false);
}

/* One load step's statements and parameters, for a try in a subtransaction */
typedef struct LoadTry
{
	LoadPlan   *plan;
	bool		has_lower;
	bool		has_upper;
	int			nargs;
	Oid		   *types;
	Datum	   *values;
	LoadCounts *counts;
	SubTransactionId subxid;	/* the subtransaction it ran in */
} LoadTry;

/* RunLoadTry runs the statements of a LoadTry */
static void
RunLoadTry(void *arg)
{
	LoadTry    *t = arg;

	t->subxid = GetCurrentSubTransactionId();
	ExecuteStatements(t->plan, BuildLoadStatements(t->plan, t->has_lower, t->has_upper),
					  t->has_lower, t->has_upper, t->nargs, t->types, t->values, t->counts);
}

/*
 * ExecuteLoad runs the statements of one load step (ExecuteStatements).
 * With conversions and on_conversion_error quarantine, it first loads with
 * plain casts in a subtransaction; when a value does not convert, it rolls
 * that back and loads the window again through the conversion gate (see
 * the header). Another error, or any error of the second load, fails the
 * run as before.
 */
void
ExecuteLoad(LoadPlan *plan, bool has_lower, bool has_upper, int nargs, Oid *types,
			Datum *values, LoadCounts *counts)
{
	LoadCounts	before = *counts;
	LoadTry		t = {plan, has_lower, has_upper, nargs, types, values, counts, InvalidSubTransactionId};

	plan->convert_safely = false;
	if (!plan->has_conversions || strcmp(plan->def->on_conversion_error, "quarantine") != 0)
	{
		RunLoadTry(&t);
		return;
	}
	if (TryInSubtransactionIf(RunLoadTry, &t, IsConversionError, NULL) == 0)
	{
		/* the row checks' gate, armed in the subtransaction, is the run's now */
		AdoptRowGate(t.subxid);
		return;
	}
	*counts = before;
	plan->convert_safely = true;
	plan->redact_reasons = PipelineHoldsPersonalData(plan->def);
	RunLoadTry(&t);
}
