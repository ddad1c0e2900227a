/*-------------------------------------------------------------------------
 *
 * src/catalog/masks.c
 *
 * Masks at load: a pipeline's `masks` option maps source columns to what
 * the load writes instead of their values (docs/privacy.md):
 *
 *   tokenize   keyed HMAC-SHA-256 of the value: "tk<version>_" and 32 hex
 *              digits; deterministic, so tokens join across tables
 *   hash       SHA-256 of a secret pepper and the value: "h<version>_" and
 *              64 hex digits
 *   partial    the first keep_start and last keep_end characters (1 and 2),
 *              the rest "***"; for an e-mail, the first character of the
 *              local part and the whole domain
 *   null       NULL
 *   month, year  a date or timestamp truncated to its month or year (UTC)
 *   bucket     a number rounded down to a multiple of width
 *
 * This file reads and checks the option, gives the SQL expression the
 * planner puts in the load statement for a masked column, keeps the keys
 * (pipeline.mask_key: readable by the extension's owner only; a key's
 * versions are immutable, so a backend caches them) and has the SQL
 * functions the expressions call. Those that use a key work only while the
 * engine runs a load statement (ArmMasks), so that nobody computes tokens
 * with a pipeline's key by calling them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pipeline/catalog.h"

PIPELINE_FUNCTION(pipeline_mask_token);
PIPELINE_FUNCTION(pipeline_mask_hash);
PIPELINE_FUNCTION(pipeline_mask_partial);

#define DEFAULT_KEY "default"
#define KEY_BYTES 32

static const char *const method_names[] = {
	[MASK_TOKENIZE] = "tokenize",[MASK_HASH] = "hash",[MASK_PARTIAL] = "partial",
	[MASK_NULL] = "null",[MASK_MONTH] = "month",[MASK_YEAR] = "year",[MASK_BUCKET] = "bucket",
};

/* A cached key version */
typedef struct CachedKey
{
	char		name[NAMEDATALEN];
	int			version;
	uint8		secret[KEY_BYTES];
} CachedKey;

static List *key_cache = NIL;

/* the load statement the key functions may serve: its transaction and subtransaction */
static bool masks_armed = false;
static LocalTransactionId armed_lxid = InvalidLocalTransactionId;
static SubTransactionId armed_subxid = InvalidSubTransactionId;

/* BadMasks raises 22023 for a malformed masks option */
static void
BadMasks(const char *message, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("Write masks as {\"column\": \"tokenize\"}; methods: tokenize, hash, partial, null, month, year, bucket (see docs/privacy.md).")));
}

/* IntMember reads an optional non-negative integer member of a mask */
static int
IntMember(const char *text, const char *column, const char *member, int dflt)
{
	char	   *end;
	long		v;

	if (text == NULL)
		return dflt;
	v = strtol(text, &end, 10);
	if (*end != '\0' || v < 0 || v > 100)
		BadMasks(psprintf("%s of the mask of column \"%s\" must be an integer from 0 to 100", member, column),
				 psprintf("It is %s.", text));
	return (int) v;
}

/*
 * ParseMasks reads a masks option into ColumnMask entries, checking its
 * shape (22023): an object whose members are a method name, or an object
 * with "method" and the method's own members.
 */
List *
ParseMasks(Jsonb *masks)
{
	Oid			types[1] = {JSONBOID};
	Datum		values[1];
	List	   *out = NIL;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;

	if (masks == NULL)
		return NIL;
	if (!JB_ROOT_IS_OBJECT(masks) || JB_ROOT_IS_SCALAR(masks))
		BadMasks("masks must be a JSON object of column names to masks", NULL);
	if (JB_ROOT_COUNT(masks) == 0)
		return NIL;				/* no masks, the common case: no statement */
	SPI_connect();
	values[0] = JsonbPGetDatum(masks);
	if (SPI_execute_with_args("SELECT e.key, jsonb_typeof(e.value),"
							  " CASE jsonb_typeof(e.value) WHEN 'string' THEN e.value #>> '{}'"
							  "      ELSE e.value ->> 'method' END,"
							  " e.value ->> 'key', e.value ->> 'keep_start', e.value ->> 'keep_end',"
							  " e.value ->> 'width',"
							  " (SELECT string_agg(k, ', ') FROM jsonb_object_keys(e.value) AS k"
							  "   WHERE jsonb_typeof(e.value) = 'object'"
							  "     AND k NOT IN ('method', 'key', 'keep_start', 'keep_end', 'width'))"
							  " FROM jsonb_each($1) AS e ORDER BY e.key",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read masks");
	/* what is read outlives SPI: it is copied into the caller's context */
	old = MemoryContextSwitchTo(caller);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		ColumnMask *m = palloc0(sizeof(ColumnMask));
		char	   *kind = SPI_getvalue(t, d, 2);
		char	   *method = SPI_getvalue(t, d, 3);
		char	   *unknown = SPI_getvalue(t, d, 8);
		int			k;

		m->column = SPI_getvalue(t, d, 1);
		if (strcmp(kind, "string") != 0 && strcmp(kind, "object") != 0)
			BadMasks(psprintf("the mask of column \"%s\" must be a method name or an object", m->column),
					 psprintf("It is a JSON %s.", kind));
		if (method == NULL)
			BadMasks(psprintf("the mask of column \"%s\" has no method", m->column), NULL);
		for (k = 0; k < lengthof(method_names); k++)
			if (strcmp(method, method_names[k]) == 0)
				break;
		if (k == lengthof(method_names))
			BadMasks(psprintf("unknown mask \"%s\" for column \"%s\"", method, m->column), NULL);
		if (unknown)
			BadMasks(psprintf("the mask of column \"%s\" has unknown members: %s", m->column, unknown), NULL);
		m->method = (MaskMethod) k;
		m->key = SPI_getvalue(t, d, 4) ? SPI_getvalue(t, d, 4) : pstrdup(DEFAULT_KEY);
		if (SPI_getvalue(t, d, 4) && m->method != MASK_TOKENIZE && m->method != MASK_HASH)
			BadMasks(psprintf("the %s mask of column \"%s\" takes no key", method, m->column), NULL);
		m->keep_start = IntMember(SPI_getvalue(t, d, 5), m->column, "keep_start", 1);
		m->keep_end = IntMember(SPI_getvalue(t, d, 6), m->column, "keep_end", 2);
		m->width = SPI_getvalue(t, d, 7);
		if (m->method == MASK_BUCKET)
		{
			char	   *end;

			if (m->width == NULL || strtod(m->width, &end) <= 0 || *end != '\0')
				BadMasks(psprintf("the bucket mask of column \"%s\" needs a positive width", m->column),
						 "Write {\"method\": \"bucket\", \"width\": 10}.");
		}
		else if (m->width)
			BadMasks(psprintf("the %s mask of column \"%s\" takes no width", method, m->column), NULL);
		out = lappend(out, m);
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	return out;
}

/* FindMask returns the mask of a column, NULL if it has none */
ColumnMask *
FindMask(List *masks, const char *column)
{
	ListCell   *lc;

	foreach(lc, masks)
		if (strcmp(((ColumnMask *) lfirst(lc))->column, column) == 0)
			return lfirst(lc);
	return NULL;
}

/* MaskMethodName names a method */
const char *
MaskMethodName(MaskMethod method)
{
	return method_names[method];
}

/* MaskYieldsText tells whether a mask writes text whatever the column's type */
bool
MaskYieldsText(ColumnMask *m)
{
	return m->method == MASK_TOKENIZE || m->method == MASK_HASH || m->method == MASK_PARTIAL;
}

/*
 * LatestKeyVersion returns the newest version of a key; 42704 when there
 * is none (missing_ok: 0).
 */
int
LatestKeyVersion(const char *name, bool missing_ok)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *v;
	int			version;

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	ExecCatalog("SELECT max(version) FROM pipeline.mask_key WHERE name = $1", 1, types, values, NULL, true);
	v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	version = v ? atoi(v) : 0;
	SPI_finish();
	if (version == 0 && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("key \"%s\" does not exist", name),
				 errdetail("The tokenize and hash masks use a key of pipeline.mask_key."),
				 errhint("Create it with SELECT pipeline.create_key('%s');", name)));
	return version;
}

/*
 * ValidateMasks checks a pipeline's masks against its source: each masked
 * column exists; the incremental and delete columns are not masked (the
 * watermark and the deletes read them); a key column is only tokenized or
 * hashed (another mask would merge distinct keys); month and year mask
 * dates and timestamps, bucket numbers; the keys exist.
 */
void
ValidateMasks(PipelineDef *def, Oid source_relid)
{
	ListCell   *lc;

	foreach(lc, ParseMasks(def->masks))
	{
		ColumnMask *m = lfirst(lc);
		AttrNumber	att = get_attnum(source_relid, m->column);
		Oid			typid;
		char		category;
		bool		preferred;
		ListCell   *kc;

		if (att <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("masked column \"%s\" is not in the source", m->column),
					 errhint("Name columns of the source in masks.")));
		if ((def->incremental_column && strcmp(def->incremental_column, m->column) == 0) ||
			(def->delete_column && strcmp(def->delete_column, m->column) == 0))
			BadMasks(psprintf("column \"%s\" cannot be masked", m->column),
					 "The incremental and delete columns are read as they are by every run.");
		foreach(kc, def->unique_key)
			if (strcmp(lfirst(kc), m->column) == 0 && m->method != MASK_TOKENIZE && m->method != MASK_HASH)
				BadMasks(psprintf("key column \"%s\" can only be tokenized or hashed", m->column),
						 "Another mask would give distinct keys the same value.");
		typid = getBaseType(get_atttype(source_relid, att));
		get_type_category_preferred(typid, &category, &preferred);
		if ((m->method == MASK_MONTH || m->method == MASK_YEAR) &&
			typid != DATEOID && typid != TIMESTAMPOID && typid != TIMESTAMPTZOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("the %s mask needs a date or timestamp, and column \"%s\" is %s",
							MaskMethodName(m->method), m->column, format_type_be(typid)),
					 errhint("Mask the column another way, or cast it in a view.")));
		if (m->method == MASK_BUCKET && category != TYPCATEGORY_NUMERIC)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("the bucket mask needs a number, and column \"%s\" is %s",
							m->column, format_type_be(typid)),
					 errhint("Mask the column another way, or cast it in a view.")));
		if (m->method == MASK_TOKENIZE || m->method == MASK_HASH)
			(void) LatestKeyVersion(m->key, false);
	}
}

/*
 * MaskExpression returns the SQL a load writes for a masked column: ref is
 * the column's reference in the load statement, typid and typmod its type
 * in the source. A key is named with its newest version, so a rotation
 * applies from the next run on; no secret is in the SQL.
 */
char *
MaskExpression(ColumnMask *m, const char *ref, Oid typid, int32 typmod)
{
	const char *type = format_type_with_typemod(typid, typmod);
	bool		is_date = getBaseType(typid) == DATEOID;
	bool		is_tz = getBaseType(typid) == TIMESTAMPTZOID;

	switch (m->method)
	{
		case MASK_TOKENIZE:
		case MASK_HASH:
			return psprintf("pipeline.%s(%s::pg_catalog.text, %s, %d)",
							m->method == MASK_TOKENIZE ? "_mask_token" : "_mask_hash", ref,
							quote_literal_cstr(m->key), LatestKeyVersion(m->key, false));
		case MASK_PARTIAL:
			return psprintf("pipeline._mask_partial(%s::pg_catalog.text, %d, %d)", ref,
							m->keep_start, m->keep_end);
		case MASK_NULL:
			return psprintf("NULL::%s", type);
		case MASK_MONTH:
		case MASK_YEAR:
			if (is_tz)
				return psprintf("pg_catalog.date_trunc('%s', %s, 'UTC')", MaskMethodName(m->method), ref);
			return psprintf("pg_catalog.date_trunc('%s', %s%s)::%s", MaskMethodName(m->method), ref,
							is_date ? "::pg_catalog.timestamp" : "", type);
		case MASK_BUCKET:
			return psprintf("(pg_catalog.floor(%s::pg_catalog.numeric / %s) * %s)::%s",
							ref, m->width, m->width, type);
	}
	return NULL;				/* not reached */
}

/* ArmMasks lets the key functions serve the load statement about to run */
void
ArmMasks(void)
{
	masks_armed = true;
	armed_lxid = MyProc->lxid;
	armed_subxid = GetCurrentSubTransactionId();
}

/* DisarmMasks ends what ArmMasks allowed */
void
DisarmMasks(void)
{
	masks_armed = false;
}

/*
 * KeySecret returns a key version's secret, from the cache or read as the
 * extension's owner; only inside an armed load statement (42501).
 */
static const uint8 *
KeySecret(const char *name, int version)
{
	ListCell   *lc;
	CachedKey  *k;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	bytea	   *secret;
	bool		isnull;
	MemoryContext old;

	if (!masks_armed || MyProc->lxid != armed_lxid || GetCurrentSubTransactionId() != armed_subxid)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("masks with a key are computed only by a pipeline's load"),
				 errdetail("Key \"%s\" is not usable outside a run.", name),
				 errhint("Set the masks option of a pipeline.")));
	foreach(lc, key_cache)
	{
		k = lfirst(lc);
		if (k->version == version && strcmp(k->name, name) == 0)
			return k->secret;
	}
	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	SPI_connect();
	ExecCatalog("SELECT secret FROM pipeline.mask_key WHERE name = $1 AND version = $2",
				2, types, values, NULL, true);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("version %d of key \"%s\" does not exist", version, name)));
	secret = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										   &isnull));
	if (VARSIZE_ANY_EXHDR(secret) != KEY_BYTES)
		elog(ERROR, "key \"%s\" version %d has a secret of the wrong size", name, version);
	old = MemoryContextSwitchTo(TopMemoryContext);
	k = palloc(sizeof(CachedKey));
	strlcpy(k->name, name, NAMEDATALEN);
	k->version = version;
	memcpy(k->secret, VARDATA_ANY(secret), KEY_BYTES);
	key_cache = lappend(key_cache, k);
	MemoryContextSwitchTo(old);
	SPI_finish();
	return k->secret;
}

/* Prefixed returns prefix followed by the first n bytes of digest in hex */
static text *
Prefixed(const char *prefix, int version, const uint8 *digest, int n)
{
	return cstring_to_text(psprintf("%s%d_%s", prefix, version, HexString(digest, n)));
}

/* pipeline._mask_token(value, key, version): the tokenize mask */
Datum
pipeline_mask_token(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			version = PG_GETARG_INT32(2);
	const uint8 *secret = KeySecret(name, version);
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	if (ctx == NULL || pg_hmac_init(ctx, secret, KEY_BYTES) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)) < 0 ||
		pg_hmac_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute an HMAC: %s", pg_hmac_error(ctx));
	pg_hmac_free(ctx);
	PG_RETURN_TEXT_P(Prefixed("tk", version, digest, 16));
}

/* pipeline._mask_hash(value, key, version): the hash mask, SHA-256 of pepper and value */
Datum
pipeline_mask_hash(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			version = PG_GETARG_INT32(2);
	const uint8 *pepper = KeySecret(name, version);
	size_t		len = VARSIZE_ANY_EXHDR(value);
	char	   *buf = palloc(KEY_BYTES + len);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	memcpy(buf, pepper, KEY_BYTES);
	memcpy(buf + KEY_BYTES, VARDATA_ANY(value), len);
	Sha256(buf, KEY_BYTES + len, digest);
	PG_RETURN_TEXT_P(Prefixed("h", version, digest, PG_SHA256_DIGEST_LENGTH));
}

/*
 * pipeline._mask_partial(value, keep_start, keep_end): the partial mask.
 * Characters, not bytes, are kept; a value too short to keep anything
 * becomes "***".
 */
Datum
pipeline_mask_partial(PG_FUNCTION_ARGS)
{
	char	   *v = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			keep_start = PG_GETARG_INT32(1);
	int			keep_end = PG_GETARG_INT32(2);
	char	   *at = strchr(v, '@');
	int			nchars;
	int			start_bytes;
	int			end_bytes;
	StringInfoData buf;

	initStringInfo(&buf);
	if (at && at != v && strchr(at + 1, '@') == NULL && at[1] != '\0')
	{
		/* an e-mail: its first character, and its domain */
		appendBinaryStringInfo(&buf, v, pg_mblen(v));
		appendStringInfo(&buf, "***%s", at);
		PG_RETURN_TEXT_P(cstring_to_text(buf.data));
	}
	nchars = pg_mbstrlen(v);
	if (nchars <= keep_start + keep_end)
		PG_RETURN_TEXT_P(cstring_to_text("***"));
	start_bytes = pg_mbcharcliplen(v, strlen(v), keep_start);
	end_bytes = strlen(v) - pg_mbcharcliplen(v, strlen(v), nchars - keep_end);
	appendBinaryStringInfo(&buf, v, start_bytes);
	appendStringInfoString(&buf, "***");
	appendBinaryStringInfo(&buf, v + strlen(v) - end_bytes, end_bytes);
	PG_RETURN_TEXT_P(cstring_to_text(buf.data));
}
