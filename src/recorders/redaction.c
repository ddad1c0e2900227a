/*-------------------------------------------------------------------------
 *
 * src/recorders/redaction.c
 *
 * Values of personal data never appear in what pg_pipeline records of a
 * failed run: its record in pipeline.runs, its alert, its audit entry, its
 * OpenLineage FAIL event (all written from the one RunRecord by
 * run_outcome.c). PostgreSQL quotes row values in two classes of errors:
 *
 *   class 22 (data exception): the message and detail quote the value,
 *       invalid input syntax for type integer: "SSN-123-45-6789";
 *   class 23 (integrity constraint violation): the detail quotes the key
 *       or the row, Key (email)=(ada@example.com) already exists. /
 *       Failing row contains (7, ada@example.com, ...).
 *
 * When the pipeline's source or target holds personal data
 * (pipeline.pii_columns: declared, or derived through lineage), those
 * values are replaced by [redacted] before the run is recorded. The caller
 * still receives the error as PostgreSQL raised it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "pipeline/recorders.h"

#define REDACTED "[redacted]"

/* PipelineHoldsPersonalData tells whether a pipeline's source or target has a classified column */
bool
PipelineHoldsPersonalData(PipelineDef *def)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		found;

	if (def->source_schema == NULL || def->target_schema == NULL)
		return true;			/* not known: redact */
	values[0] = CStringGetTextDatum(quote_qualified_identifier(def->source_schema, def->source_table));
	values[1] = CStringGetTextDatum(quote_qualified_identifier(def->target_schema, def->target_table));
	SPI_connect();
	ExecCatalog("SELECT 1 FROM pipeline.pii_columns"
				" WHERE relation IN (to_regclass($1), to_regclass($2)) LIMIT 1",
				2, types, values, NULL, true);
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/* RedactQuoted replaces what every pair of double quotes holds */
char *
RedactQuoted(const char *text)
{
	StringInfoData buf;
	const char *p = text;

	initStringInfo(&buf);
	while (*p)
	{
		const char *close;

		if (*p != '"' || (close = strchr(p + 1, '"')) == NULL)
		{
			appendStringInfoChar(&buf, *p++);
			continue;
		}
		appendStringInfoString(&buf, "\"" REDACTED "\"");
		p = close + 1;
	}
	return buf.data;
}

/*
 * RedactValueLists replaces the values PostgreSQL lists in an integrity
 * error's detail: from the first "=(" (a key) or "contains (" (a failing
 * row) to the detail's last ")", which closes the list (or the second list
 * of an exclusion conflict: both go).
 */
static char *
RedactValueLists(const char *text)
{
	const char *key = strstr(text, ")=(");
	const char *row = strstr(text, "contains (");
	const char *open;
	const char *close = strrchr(text, ')');
	StringInfoData buf;

	open = key ? key + 3 : NULL;
	if (row && (open == NULL || row + 10 < open))
		open = row + 10;
	if (open == NULL || close == NULL || close < open)
		return pstrdup(text);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, text, open - text);
	appendStringInfoString(&buf, REDACTED);
	appendStringInfoString(&buf, close);
	return buf.data;
}

/*
 * RedactRunError removes row values from a failed run's message and detail
 * when its pipeline holds personal data (see the header); the hint, which
 * PostgreSQL writes without values, is kept.
 */
void
RedactRunError(RunRecord *run)
{
	const char *state;

	if (run->sqlerrcode == 0)
		return;
	state = unpack_sql_state(run->sqlerrcode);
	if (strncmp(state, "22", 2) != 0 && strncmp(state, "23", 2) != 0)
		return;
	if (!PipelineHoldsPersonalData(run->def))
		return;
	if (strncmp(state, "22", 2) == 0)
	{
		if (run->message)
			run->message = RedactQuoted(run->message);
		if (run->detail)
			run->detail = RedactQuoted(run->detail);
	}
	else if (run->detail)
		run->detail = RedactValueLists(run->detail);
}
