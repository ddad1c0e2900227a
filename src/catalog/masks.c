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
 * with a pipeline's key by calling them; pipeline.forget gets the tokens
 * and hashes of a value it erases from MaskedForms, in C.
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
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pipeline/catalog.h"

PIPELINE_FUNCTION(pipeline_mask_token);
PIPELINE_FUNCTION(pipeline_mask_hash);
PIPELINE_FUNCTION(pipeline_mask_partial);
PIPELINE_FUNCTION(pipeline_mask_month);
PIPELINE_FUNCTION(pipeline_mask_year);

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
static StatementArm masks_arm;
static ResourceOwner armed_owner = NULL;

/*
 * The HMAC contexts of the armed load statement, one per key version, kept
 * from row to row (creating one per token was most of a token's cost). Each
 * belongs to armed_owner: DisarmMasks frees them after the statement; when
 * the statement fails, the owner's release frees them, and the next
 * ArmMasks forgets them.
 */
typedef struct TokenContext
{
	char		name[NAMEDATALEN];
	int			version;
	pg_hmac_ctx *ctx;
	bool		keyed;			/* initialised once with the key */
} TokenContext;

/*
 * Whether pg_hmac_init(ctx, NULL, 0) on a context keyed before reuses its
 * key, as OpenSSL's HMAC_Init_ex does (keying costs more than the HMAC of a
 * short value): checked once per backend against a freshly keyed context
 * (HmacKeyReuseWorks), never assumed.
 */
static int	hmac_key_reuse = -1;	/* -1: not checked yet */

static List *token_contexts = NIL;
static uint64 arm_generation = 0;	/* counts ArmMasks: a kept context's statement */

/*
 * What a call site of pipeline._mask_token (its fn_extra) found on its last
 * row: the key version's secret and kept context, valid while the same
 * statement is armed (generation) and the call runs under its owner.
 */
typedef struct TokenSite
{
	uint64		generation;
	int			version;
	char		name[NAMEDATALEN];
	const uint8 *secret;
	TokenContext *tc;
	char		head[16];		/* "tk<version>_" */
	int			head_len;
} TokenSite;

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
			if (is_date)
				return psprintf("pipeline._mask_%s(%s)", MaskMethodName(m->method), ref);
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
	/* contexts of a statement that failed: its owner's release freed them */
	list_free_deep(token_contexts);
	token_contexts = NIL;
	arm_generation++;
	ArmForStatement(&masks_arm);
	armed_owner = CurrentResourceOwner;
}

/* DisarmMasks ends what ArmMasks allowed, freeing the statement's HMAC contexts */
void
DisarmMasks(void)
{
	ListCell   *lc;

	foreach(lc, token_contexts)
		pg_hmac_free(((TokenContext *) lfirst(lc))->ctx);
	list_free_deep(token_contexts);
	token_contexts = NIL;
	arm_generation++;
	masks_arm.armed = false;
	armed_owner = NULL;
}

/* HmacOf computes HMAC-SHA-256 of data with a context (key NULL: the one it was keyed with) */
static void
HmacOf(pg_hmac_ctx *ctx, const uint8 *key, const uint8 *data, size_t len, uint8 *digest)
{
	if (pg_hmac_init(ctx, key, key ? KEY_BYTES : 0) < 0 ||
		pg_hmac_update(ctx, data, len) < 0 ||
		pg_hmac_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute an HMAC: %s", pg_hmac_error(ctx));
}

/*
 * HmacKeyReuseWorks tells whether a keyed HMAC context computes the same
 * HMAC when initialised again without the key (OpenSSL's behaviour; the
 * built-in fallback would use an empty key instead).
 */
static bool
HmacKeyReuseWorks(void)
{
	static const uint8 key[KEY_BYTES] = "pg_pipeline's key reuse check..";
	static const uint8 data[] = "pg_pipeline";
	uint8		fresh[PG_SHA256_DIGEST_LENGTH];
	uint8		reused[PG_SHA256_DIGEST_LENGTH];
	pg_hmac_ctx *ctx;

	if (hmac_key_reuse >= 0)
		return hmac_key_reuse;
	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
		elog(ERROR, "could not create an HMAC context");
	HmacOf(ctx, key, data, sizeof(data), fresh);
	HmacOf(ctx, (const uint8 *) "another key, another hmac.......", data, sizeof(data), reused);
	HmacOf(ctx, key, data, sizeof(data), reused);
	HmacOf(ctx, NULL, data, sizeof(data), reused);
	pg_hmac_free(ctx);
	hmac_key_reuse = memcmp(fresh, reused, sizeof(fresh)) == 0;
	return hmac_key_reuse;
}

/*
 * TokenContextFor returns the statement's HMAC context for a key version,
 * creating it on first use. It is kept only when created under the
 * statement's own resource owner; otherwise (a portal of a function the
 * statement calls) *temporary is set and the caller frees it after use.
 */
static TokenContext *
TokenContextFor(const char *name, int version, bool *temporary)
{
	ListCell   *lc;
	TokenContext *tc;
	MemoryContext old;
	pg_hmac_ctx *ctx;

	*temporary = CurrentResourceOwner != armed_owner;
	if (!*temporary)
		foreach(lc, token_contexts)
		{
			tc = lfirst(lc);
			if (tc->version == version && strcmp(tc->name, name) == 0)
				return tc;
		}
	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
		elog(ERROR, "could not create an HMAC context");
	old = MemoryContextSwitchTo(*temporary ? CurrentMemoryContext : TopMemoryContext);
	tc = palloc0(sizeof(TokenContext));
	strlcpy(tc->name, name, NAMEDATALEN);
	tc->version = version;
	tc->ctx = ctx;
	if (!*temporary)
		token_contexts = lappend(token_contexts, tc);
	MemoryContextSwitchTo(old);
	return tc;
}

/*
 * CachedSecret returns a key version's secret, from the cache or read as
 * the extension's owner (42704 when the version does not exist).
 */
static const uint8 *
CachedSecret(const char *name, int version)
{
	ListCell   *lc;
	CachedKey  *k;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	bytea	   *secret;
	bool		isnull;
	MemoryContext old;

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

/*
 * KeySecret returns a key version's secret to the SQL functions of the
 * masks: only inside an armed load statement (42501).
 */
static const uint8 *
KeySecret(const char *name, int version)
{
	if (!ArmedForStatement(&masks_arm))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("masks with a key are computed only by a pipeline's load"),
				 errdetail("Key \"%s\" is not usable outside a run.", name),
				 errhint("Set the masks option of a pipeline.")));
	return CachedSecret(name, version);
}

/* HeadedHex returns head (len bytes) followed by the first n bytes of digest in hex */
static text *
HeadedHex(const char *head, int len, const uint8 *digest, int n)
{
	text	   *t = (text *) palloc(VARHDRSZ + len + 2 * n);

	SET_VARSIZE(t, VARHDRSZ + len + 2 * n);
	memcpy(VARDATA(t), head, len);
	hex_encode((const char *) digest, n, VARDATA(t) + len);
	return t;
}

/* Prefixed returns prefix and version ("tk1_") followed by the first n bytes of digest in hex */
static text *
Prefixed(const char *prefix, int version, const uint8 *digest, int n)
{
	char		head[32];

	return HeadedHex(head, snprintf(head, sizeof(head), "%s%d_", prefix, version), digest, n);
}

/* TokenOf is the tokenize mask of a value: "tk<version>_", HMAC-SHA-256 cut to 128 bits */
static text *
TokenOf(const uint8 *secret, int version, const char *value, size_t len)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	HmacSha256(secret, KEY_BYTES, value, len, digest);
	return Prefixed("tk", version, digest, 16);
}

/* HashOf is the hash mask of a value: "h<version>_", SHA-256 of pepper and value */
static text *
HashOf(const uint8 *pepper, int version, const char *value, size_t len)
{
	char	   *buf = palloc(KEY_BYTES + len);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	memcpy(buf, pepper, KEY_BYTES);
	memcpy(buf + KEY_BYTES, value, len);
	Sha256(buf, KEY_BYTES + len, digest);
	return Prefixed("h", version, digest, PG_SHA256_DIGEST_LENGTH);
}

/* pipeline._mask_token(value, key, version): the tokenize mask */
Datum
pipeline_mask_token(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	text	   *name_text = PG_GETARG_TEXT_PP(1);
	int			version = PG_GETARG_INT32(2);
	TokenSite  *site = (TokenSite *) fcinfo->flinfo->fn_extra;
	const uint8 *secret;
	bool		temporary = false;
	TokenContext *tc;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	/* the call site's last row: the same armed statement, key and owner */
	if (site && site->generation == arm_generation && ArmedForStatement(&masks_arm) &&
		CurrentResourceOwner == armed_owner && site->version == version &&
		VARSIZE_ANY_EXHDR(name_text) == strlen(site->name) &&
		memcmp(VARDATA_ANY(name_text), site->name, VARSIZE_ANY_EXHDR(name_text)) == 0)
	{
		secret = site->secret;
		tc = site->tc;
	}
	else
	{
		char	   *name = text_to_cstring(name_text);

		secret = KeySecret(name, version);
		tc = TokenContextFor(name, version, &temporary);
		if (!temporary)
		{
			if (site == NULL)
				site = fcinfo->flinfo->fn_extra =
					MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(TokenSite));
			site->generation = arm_generation;
			site->version = version;
			strlcpy(site->name, name, NAMEDATALEN);
			site->secret = secret;
			site->tc = tc;
			site->head_len = snprintf(site->head, sizeof(site->head), "tk%d_", version);
		}
	}

	/* a kept context, keyed once, is initialised again with its key when that works */
	HmacOf(tc->ctx, tc->keyed && HmacKeyReuseWorks() ? NULL : secret,
		   (const uint8 *) VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), digest);
	tc->keyed = true;
	if (temporary)
	{
		pg_hmac_free(tc->ctx);
		PG_RETURN_TEXT_P(Prefixed("tk", version, digest, 16));
	}
	PG_RETURN_TEXT_P(HeadedHex(site->head, site->head_len, digest, 16));
}

/* pipeline._mask_hash(value, key, version): the hash mask, SHA-256 of pepper and value */
Datum
pipeline_mask_hash(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	int			version = PG_GETARG_INT32(2);
	const uint8 *pepper = KeySecret(text_to_cstring(PG_GETARG_TEXT_PP(1)), version);

	PG_RETURN_TEXT_P(HashOf(pepper, version, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)));
}

/*
 * MaskedForms returns what a column masked by tokenize or hash with a key
 * holds of a value: its token (or hash) under each version of the key, as
 * text, since rows loaded before a rotation keep their version's. For
 * pipeline.forget, which matches them (src/api/erasure.c); computed here,
 * in C, so that no SQL function hands out tokens.
 */
List *
MaskedForms(const char *value, MaskMethod method, const char *key)
{
	List	   *forms = NIL;
	int			latest = LatestKeyVersion(key, true);

	Assert(method == MASK_TOKENIZE || method == MASK_HASH);
	for (int v = 1; v <= latest; v++)
	{
		const uint8 *secret = CachedSecret(key, v);
		text	   *t = method == MASK_TOKENIZE ? TokenOf(secret, v, value, strlen(value))
			: HashOf(secret, v, value, strlen(value));

		forms = lappend(forms, text_to_cstring(t));
	}
	return forms;
}

/* AllAscii tells whether a string of len bytes has only ASCII characters */
static bool
AllAscii(const char *v, int len)
{
	for (int i = 0; i < len; i++)
		if (IS_HIGHBIT_SET(v[i]))
			return false;
	return true;
}

/*
 * pipeline._mask_partial(value, keep_start, keep_end): the partial mask.
 * Characters, not bytes, are kept; a value too short to keep anything
 * becomes "***".
 */
Datum
pipeline_mask_partial(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);
	int			keep_start = PG_GETARG_INT32(1);
	int			keep_end = PG_GETARG_INT32(2);
	const char *v = VARDATA_ANY(value);
	int			len = VARSIZE_ANY_EXHDR(value);
	const char *at = memchr(v, '@', len);
	int			nchars;
	int			start_bytes;
	int			end_bytes;

	/* a mask's keep counts are 0 to 100 (IntMember); a direct call is held to the same */
	if (keep_start < 0 || keep_start > 100 || keep_end < 0 || keep_end > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the characters a partial mask keeps must be from 0 to 100"),
				 errdetail("It was asked to keep %d leading and %d trailing characters.", keep_start, keep_end),
				 errhint("Give keep_start and keep_end from 0 to 100.")));
	if (at && at != v && at + 1 < v + len && memchr(at + 1, '@', v + len - at - 1) == NULL)
	{
		/* an e-mail: its first character, and its domain */
		start_bytes = pg_mblen(v);
		end_bytes = v + len - at;
	}
	else if (pg_database_encoding_max_length() == 1 || AllAscii(v, len))
	{
		/* one byte per character: no multibyte walk (most values, per row) */
		if (len <= keep_start + keep_end)
			PG_RETURN_TEXT_P(cstring_to_text("***"));
		start_bytes = keep_start;
		end_bytes = keep_end;
	}
	else
	{
		nchars = pg_mbstrlen_with_len(v, len);
		if (nchars <= keep_start + keep_end)
			PG_RETURN_TEXT_P(cstring_to_text("***"));
		start_bytes = pg_mbcharcliplen(v, len, keep_start);
		end_bytes = len - pg_mbcharcliplen(v, len, nchars - keep_end);
	}
	{
		int			out_len = start_bytes + 3 + end_bytes;
		text	   *out = (text *) palloc(VARHDRSZ + out_len);

		SET_VARSIZE(out, VARHDRSZ + out_len);
		memcpy(VARDATA(out), v, start_bytes);
		memcpy(VARDATA(out) + start_bytes, "***", 3);
		memcpy(VARDATA(out) + start_bytes + 3, v + len - end_bytes, end_bytes);
		PG_RETURN_TEXT_P(out);
	}
}

/* TruncateDate returns a date's first day of its month, or of its year */
static DateADT
TruncateDate(DateADT d, bool year)
{
	int			y;
	int			m;
	int			day;

	if (DATE_NOT_FINITE(d))
		return d;
	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &day);
	return date2j(y, year ? 1 : m, 1) - POSTGRES_EPOCH_JDATE;
}

/* pipeline._mask_month(date): the month mask of a date, its month's first day */
Datum
pipeline_mask_month(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATEADT(TruncateDate(PG_GETARG_DATEADT(0), false));
}

/* pipeline._mask_year(date): the year mask of a date, its year's first day */
Datum
pipeline_mask_year(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATEADT(TruncateDate(PG_GETARG_DATEADT(0), true));
}
