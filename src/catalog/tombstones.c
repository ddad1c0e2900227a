/*-------------------------------------------------------------------------
 *
 * src/catalog/tombstones.c
 *
 * Erasure tombstones (docs/privacy.md, "Erasing a person"). When
 * pipeline.forget erases a subject's value, it keeps no copy of the value:
 * it keeps, for each form the value takes in a column (the value itself,
 * its tokens and hashes under every version of the keys on the way), the
 * HMAC-SHA-256 of the subject and that form with the erasure key
 * (pipeline.erasure_tombstone). A run whose source holds a column that
 * identifies a subject with tombstones hashes that column's value in each
 * row the same way and skips a row that matches (engine/erasure_gate.c).
 *
 * The erasure key is 32 random bytes in pipeline.erasure_key, made by the
 * first forget, read as the extension's owner, never rotated: a tombstone
 * cannot be recomputed once the value is gone. The same keyed hash of the
 * value itself names it in erasure requests and audit entries.
 *
 * This file also answers which columns of a relation identify a subject
 * with tombstones (pipeline._subject_columns, the declarations followed
 * through lineage), cheaply when there is no tombstone at all, so that a
 * pipeline without a forgotten subject pays one index probe per run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "pipeline/catalog.h"

#define ERASURE_KEY_BYTES 32

/*
 * ErasureKey returns the erasure key (32 bytes, palloc'd), read as the
 * extension's owner; with create, it is made first when there is none. NULL
 * when there is none and create is false. Not cached: the transaction that
 * made it may roll back.
 */
uint8 *
ErasureKey(bool create)
{
	uint8	   *key = NULL;
	bool		isnull;

	SPI_connect();
	if (create)
	{
		Oid			types[1] = {BYTEAOID};
		Datum		values[1] = {PointerGetDatum(RandomSecret(ERASURE_KEY_BYTES))};

		ExecCatalog("INSERT INTO pipeline.erasure_key (key_id, secret) VALUES (1, $1)"
					" ON CONFLICT (key_id) DO NOTHING", 1, types, values, NULL, false);
	}
	ExecCatalog("SELECT secret FROM pipeline.erasure_key WHERE key_id = 1", 0, NULL, NULL, NULL,
				false);
	if (SPI_processed > 0)
	{
		bytea	   *secret = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));

		if (VARSIZE_ANY_EXHDR(secret) != ERASURE_KEY_BYTES)
			elog(ERROR, "the erasure key has a secret of the wrong size");
		key = SPI_palloc(ERASURE_KEY_BYTES);
		memcpy(key, VARDATA_ANY(secret), ERASURE_KEY_BYTES);
	}
	SPI_finish();
	return key;
}

/*
 * ErasureDigest computes the tombstone of a subject's value as a column
 * holds it: HMAC-SHA-256 with the erasure key of the subject, a zero byte
 * and the value's text (32 bytes into digest).
 */
void
ErasureDigest(const uint8 *key, const char *subject, const char *value, size_t len,
			  uint8 *digest)
{
	size_t		slen = strlen(subject);
	char	   *buf = palloc(slen + 1 + len);

	memcpy(buf, subject, slen + 1);
	memcpy(buf + slen + 1, value, len);
	HmacSha256(key, ERASURE_KEY_BYTES, buf, slen + 1 + len, digest);
	pfree(buf);
}

/* ErasureDigestHex spells the tombstone of a value in hex: a request's value_hash */
char *
ErasureDigestHex(const uint8 *key, const char *subject, const char *value)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	ErasureDigest(key, subject, value, strlen(value), digest);
	return HexString(digest, PG_SHA256_DIGEST_LENGTH);
}

/*
 * StoreTombstones keeps the tombstones of a subject's value in each of its
 * forms (C strings), for request request_id; one already kept stays.
 */
void
StoreTombstones(const uint8 *key, const char *subject, List *forms, int64 request_id)
{
	Datum	   *digests = palloc(sizeof(Datum) * Max(list_length(forms), 1));
	Oid			types[3] = {TEXTOID, BYTEAARRAYOID, INT8OID};
	Datum		values[3];
	ListCell   *lc;

	foreach(lc, forms)
	{
		const char *form = lfirst(lc);
		bytea	   *b = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

		SET_VARSIZE(b, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
		ErasureDigest(key, subject, form, strlen(form), (uint8 *) VARDATA(b));
		digests[foreach_current_index(lc)] = PointerGetDatum(b);
	}
	values[0] = CStringGetTextDatum(subject);
	values[1] = PointerGetDatum(construct_array(digests, list_length(forms), BYTEAOID, -1, false,
												TYPALIGN_INT));
	values[2] = Int64GetDatum(request_id);
	SPI_connect();
	ExecCatalog("INSERT INTO pipeline.erasure_tombstone (subject, digest, request_id)"
				" SELECT $1, d, $3 FROM unnest($2) AS d ON CONFLICT DO NOTHING",
				3, types, values, NULL, false);
	SPI_finish();
}

/*
 * ForgottenSubjectColumns returns the columns of a relation that identify a
 * subject with tombstones (SubjectColumn *, by column and subject), NIL
 * when none does. The first question, whether there is any tombstone at
 * all, is one probe; only then are the declarations followed through
 * lineage. Read with a fresh snapshot, so that a forget that committed
 * while a run waited counts.
 */
List *
ForgottenSubjectColumns(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1];
	List	   *out = NIL;
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	ExecCatalog("SELECT 1 FROM pipeline.erasure_tombstone LIMIT 1", 0, NULL, NULL, NULL, false);
	if (SPI_processed > 0)
	{
		MemoryContext old;

		values[0] = ObjectIdGetDatum(relid);
		ExecCatalog("SELECT DISTINCT s.column_name::text, s.subject FROM pipeline._subject_columns s"
					" WHERE s.relation::oid = $1"
					"   AND EXISTS (SELECT 1 FROM pipeline.erasure_tombstone t WHERE t.subject = s.subject)"
					" ORDER BY 1, 2",
					1, types, values, NULL, false);
		old = MemoryContextSwitchTo(caller);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			SubjectColumn *c = palloc(sizeof(SubjectColumn));

			c->column = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			c->subject = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
			out = lappend(out, c);
		}
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return out;
}

/*
 * LoadTombstones reads the tombstones of the subjects of columns (a list
 * of SubjectColumn *) into a hash table of 32-byte digests, in cxt.
 */
HTAB *
LoadTombstones(List *columns, MemoryContext cxt)
{
	Datum	   *subjects = palloc(sizeof(Datum) * Max(list_length(columns), 1));
	Oid			types[1] = {TEXTARRAYOID};
	Datum		values[1];
	HASHCTL		ctl;
	HTAB	   *digests;
	ListCell   *lc;

	foreach(lc, columns)
		subjects[foreach_current_index(lc)] =
			CStringGetTextDatum(((SubjectColumn *) lfirst(lc))->subject);
	values[0] = PointerGetDatum(construct_array(subjects, list_length(columns), TEXTOID, -1, false,
												TYPALIGN_INT));
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = PG_SHA256_DIGEST_LENGTH;
	ctl.entrysize = PG_SHA256_DIGEST_LENGTH;
	ctl.hcxt = cxt;
	digests = hash_create("pg_pipeline erasure tombstones", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	SPI_connect();
	ExecCatalog("SELECT digest FROM pipeline.erasure_tombstone WHERE subject = ANY ($1)",
				1, types, values, NULL, false);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *d = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
													  1, &isnull));

		if (VARSIZE_ANY_EXHDR(d) == PG_SHA256_DIGEST_LENGTH)
			(void) hash_search(digests, VARDATA_ANY(d), HASH_ENTER, NULL);
	}
	SPI_finish();
	return digests;
}
