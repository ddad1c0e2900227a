/*-------------------------------------------------------------------------
 *
 * src/common/util.c
 *
 * Small helpers several layers share, so that each is written once: the
 * required arguments of SQL functions (22004 for a NULL, the pipeline name
 * above all), a nullable text parameter for SPI, a JSON member with an escaped string
 * value (or null), random secrets, SHA-256 and HMAC-SHA-256 through
 * PostgreSQL's cryptohash and hmac, and a snapshot that sees the transaction's own latest writes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/snapmgr.h"

#include "pipeline/common.h"

/* TextOrNull returns a text Datum for a C string and sets SPI's null flag */
Datum
TextOrNull(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/*
 * AppendJsonMember appends "key":"value" (value escaped, or null), after a
 * comma if asked; with a NULL key only the value.
 */
void
AppendJsonMember(StringInfo buf, const char *key, const char *value, bool comma)
{
	if (comma)
		appendStringInfoChar(buf, ',');
	if (key)
	{
		escape_json(buf, key);
		appendStringInfoChar(buf, ':');
	}
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

/* RandomSecret returns len random bytes from the operating system, as bytea: a key's secret */
bytea *
RandomSecret(int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	if (!pg_strong_random(VARDATA(b), len))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random key")));
	SET_VARSIZE(b, VARHDRSZ + len);
	return b;
}

/* Sha256 computes the SHA-256 digest of data into digest (32 bytes) */
void
Sha256(const char *data, size_t len, uint8 *digest)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256: %s",
			 ctx ? pg_cryptohash_error(ctx) : "out of memory");
	pg_cryptohash_free(ctx);
}

/*
 * HmacSha256 computes the HMAC-SHA-256 of data with key into digest (32
 * bytes): the tokens of the tokenize mask and the erasure tombstones.
 */
void
HmacSha256(const uint8 *key, size_t keylen, const char *data, size_t len, uint8 *digest)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

	if (ctx == NULL || pg_hmac_init(ctx, key, keylen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_hmac_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute an HMAC: %s", ctx ? pg_hmac_error(ctx) : "out of memory");
	pg_hmac_free(ctx);
}

/* HexString spells bytes as lower-case hex */
char *
HexString(const uint8 *bytes, int len)
{
	char	   *s = palloc(len * 2 + 1);

	s[hex_encode((const char *) bytes, len, s)] = '\0';
	return s;
}

/* Sha256Hex returns the hex SHA-256 of data */
char *
Sha256Hex(const char *data, size_t len)
{
	uint8		d[PG_SHA256_DIGEST_LENGTH];

	Sha256(data, len, d);
	return HexString(d, PG_SHA256_DIGEST_LENGTH);
}

/* RequireArg raises 22004 when a required argument is NULL */
void
RequireArg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
}

/* PipelineNameArg reads and checks the pipeline name argument */
char *
PipelineNameArg(FunctionCallInfo fcinfo, int argno)
{
	RequireArg(fcinfo, argno, "pipeline name");
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * PushSnapshotSeeingOwnWrites makes the transaction's latest commands
 * visible to what follows (read-only SPI statements keep the active
 * snapshot, which does not see them): it pushes a snapshot that does, to be
 * popped with PopActiveSnapshot.
 */
void
PushSnapshotSeeingOwnWrites(void)
{
	CommandCounterIncrement();
	if (ActiveSnapshotSet())
	{
		PushCopiedSnapshot(GetActiveSnapshot());
		UpdateActiveSnapshotCommandId();
	}
	else
		PushActiveSnapshot(GetTransactionSnapshot());
}
