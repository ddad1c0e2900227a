\ir common/preamble.sql
-- test/pgtap/property_backfill.sql
--
-- Property test of pipeline.backfill (docs/reference/backfill.md).
--
-- For each of 8 fixed seeds, a plpgsql driver writes a random staging
-- history (a small key space, several versions per key, NULL keys, delete
-- flags, a partition value that moves; the incremental column from a
-- sequence) and loads it with normal runs (plain, or run_batched) into
-- four pipelines:
--
--   b_mh  merge, hard deletes
--   b_ms  merge, soft deletes
--   b_ak  append with a key
--   b_pt  merge, hard deletes, partition_column p (batches follow p)
--
-- Then each target is damaged at random: rows deleted, rows modified, and
-- rows moved past their source (a newer version written by someone else:
-- a greater incremental value and other values). Then random ranges are
-- backfilled, each with a random batch size (or none). After each backfill:
--
--   contents   the target equals a plain-SQL reference: for the keys whose
--              newest version in the source (DISTINCT ON (k) ... ORDER BY
--              k, v DESC) lies in one of the ranges backfilled so far, what
--              re-applying that version does to the damaged row (merge: the
--              version, or no row when it is a delete; soft deletes: a
--              soft-deleted row stays as it is; append: the version where
--              the row is missing); every other key, and every key moved
--              past its source, exactly as the damage left it;
--   counts     the run's counts equal what backfill_plan said just before
--              it, the run is triggered_by 'backfill', and for b_pt its
--              batches are the distinct values of p in the range (NULL too);
--   watermark  the watermark is where it was.
SET client_min_messages = error;

\set nseeds 8
\set steps 30
\set backfills 5
SELECT set_config('bfp.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('bfp.steps', :'steps', false) AS steps_set,
       set_config('bfp.backfills', :'backfills', false) AS backfills_set \gset
-- per seed: 4 pipes x (loaded, contents, counts, watermark)
SELECT plan(:nseeds * 16 + 5);

CREATE SCHEMA bfp;
CREATE TABLE bfp.checks (
    id     bigserial PRIMARY KEY,
    seed   integer NOT NULL,
    pipe   text NOT NULL,
    what   text NOT NULL,
    ok     boolean NOT NULL,
    detail text
);
CREATE TABLE bfp.ranges (pipe text, lo bigint, hi bigint);
CREATE TABLE bfp.snap (pipe text, k integer, v bigint, a integer, b text, p text, del boolean);
CREATE TABLE bfp.damage (pipe text, k integer, kind text);
CREATE TABLE bfp.log (seed integer, pipe text, run_id bigint, batch_rows integer, lo bigint, hi bigint,
                      planned text);
CREATE TABLE bfp.coverage (seed integer, what text, n bigint);
CREATE TABLE bfp.stg (
    k   integer,
    v   bigint GENERATED ALWAYS AS IDENTITY,
    a   integer,
    b   text,
    p   text,
    del boolean NOT NULL DEFAULT false
);
CREATE INDEX ON bfp.stg (v);

CREATE FUNCTION bfp.setup_seed() RETURNS void LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
    FOREACH p IN ARRAY ARRAY['b_mh', 'b_ms', 'b_ak', 'b_pt'] LOOP
        IF EXISTS (SELECT 1 FROM pipeline.pipelines WHERE name = p) THEN
            PERFORM pipeline.drop_pipeline(p, drop_target => true);
        END IF;
    END LOOP;
    TRUNCATE bfp.stg RESTART IDENTITY;
    TRUNCATE bfp.ranges, bfp.snap, bfp.damage;
    PERFORM pipeline.create_pipeline('b_mh', 'bfp.stg', 'bfp.t_mh', '{k}', 'v', delete_column => 'del');
    PERFORM pipeline.create_pipeline('b_ms', 'bfp.stg', 'bfp.t_ms', '{k}', 'v', delete_column => 'del',
                                     soft_delete => true);
    PERFORM pipeline.create_pipeline('b_ak', 'bfp.stg', 'bfp.t_ak', '{k}', 'v', mode => 'append');
    PERFORM pipeline.create_pipeline('b_pt', 'bfp.stg', 'bfp.t_pt', '{k}', 'v', delete_column => 'del',
                                     partition_column => 'p');
END $$;

CREATE FUNCTION bfp.add_rows(n integer) RETURNS void LANGUAGE sql AS $$
  INSERT INTO bfp.stg (k, a, b, p, del)
  SELECT CASE WHEN random() < 0.05 THEN NULL ELSE 1 + floor(random() * 12)::int END,
         CASE WHEN random() < 0.2 THEN NULL ELSE floor(random() * 5)::int END,
         CASE WHEN random() < 0.2 THEN NULL ELSE (ARRAY['a', 'b', 'c'])[1 + floor(random() * 3)::int] END,
         CASE WHEN random() < 0.2 THEN NULL ELSE (ARRAY['x', 'y', 'z'])[1 + floor(random() * 3)::int] END,
         random() < 0.15
    FROM generate_series(1, n) $$;

-- the newest version of each key in the source
CREATE VIEW bfp.newest AS
SELECT DISTINCT ON (k) k, v, a, b, p, del FROM bfp.stg WHERE k IS NOT NULL ORDER BY k, v DESC;

-- expected(pipe): the reference target after the backfills of bfp.ranges
CREATE FUNCTION bfp.expected(pipe text)
RETURNS TABLE (k integer, v bigint, a integer, b text, p text, del boolean) LANGUAGE sql AS $$
  WITH keys AS (
    SELECT n.k, n.v, n.a, n.b, n.p, n.del,
           EXISTS (SELECT 1 FROM bfp.ranges r WHERE r.pipe = $1 AND n.v BETWEEN r.lo AND r.hi) AS hit,
           EXISTS (SELECT 1 FROM bfp.damage d WHERE d.pipe = $1 AND d.k = n.k AND d.kind = 'bumped') AS bumped
      FROM bfp.newest n),
  snap AS (SELECT * FROM bfp.snap s WHERE s.pipe = $1)
  -- untouched: not hit, or moved past the source
  SELECT s.k, s.v, s.a, s.b, s.p, s.del FROM snap s JOIN keys USING (k)
   WHERE NOT keys.hit OR keys.bumped
  UNION ALL
  -- hit, a live version, merge: the row as it was when it has the version's
  -- values (a run changes nothing but the incremental value), else the version
  SELECT x.k, x.v, x.a, x.b, x.p, x.del
    FROM keys n
    LEFT JOIN snap s USING (k)
   CROSS JOIN LATERAL (
        SELECT s.k, s.v, s.a, s.b, s.p, s.del
         WHERE s.k IS NOT NULL AND (s.a, s.b, s.p, s.del) IS NOT DISTINCT FROM (n.a, n.b, n.p, n.del)
        UNION ALL
        SELECT n.k, n.v, n.a, n.b, n.p, n.del
         WHERE NOT (s.k IS NOT NULL AND (s.a, s.b, s.p, s.del) IS NOT DISTINCT FROM (n.a, n.b, n.p, n.del))) x
   WHERE $1 IN ('b_mh', 'b_pt', 'b_ms') AND n.hit AND NOT n.bumped AND NOT n.del
  UNION ALL
  -- hit, a delete: hard, no row; soft, the row as it is (soft-deleted already)
  SELECT s.k, s.v, s.a, s.b, s.p, s.del FROM keys n JOIN snap s USING (k)
   WHERE $1 = 'b_ms' AND n.hit AND NOT n.bumped AND n.del
  UNION ALL
  -- hit: append with a key inserts the version where the row is missing
  SELECT s.k, s.v, s.a, s.b, s.p, s.del FROM keys n JOIN snap s USING (k)
   WHERE $1 = 'b_ak' AND n.hit AND NOT n.bumped
  UNION ALL
  SELECT n.k, n.v, n.a, n.b, n.p, n.del FROM keys n
   WHERE $1 = 'b_ak' AND n.hit AND NOT n.bumped AND NOT EXISTS (SELECT 1 FROM snap s WHERE s.k = n.k) $$;

-- differs(pipe, target): the rows on one side only, as text ('' when none)
CREATE FUNCTION bfp.differs(pipe text, target text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
    EXECUTE format($q$
        SELECT string_agg(x::text, ' ')
          FROM ((SELECT 'target-only' AS side, * FROM (SELECT k, v, a, b, p, del FROM %1$s
                  EXCEPT ALL SELECT * FROM bfp.expected(%2$L)) t)
                UNION ALL
                (SELECT 'reference-only', * FROM (SELECT * FROM bfp.expected(%2$L)
                  EXCEPT ALL SELECT k, v, a, b, p, del FROM %1$s) r)) x $q$, target, pipe) INTO d;
    RETURN coalesce(d, '');
END $$;

CREATE FUNCTION bfp.target_of(pipe text) RETURNS text LANGUAGE sql AS
  $$ SELECT 'bfp.t_' || substr($1, 3) $$;

-- damage(pipe): deletes, modifies and moves past the source random rows of
-- the target, and keeps what it did and the target as it left it
CREATE FUNCTION bfp.damage(pipe text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t text := bfp.target_of(pipe);
BEGIN
    EXECUTE format($q$
        WITH pick AS (
            SELECT k, random() AS r FROM %1$s
        ), kinds AS (
            SELECT k, CASE WHEN r < 0.3 THEN 'deleted' WHEN r < 0.5 THEN 'modified'
                           WHEN r < 0.6 THEN 'bumped' END AS kind FROM pick
        )
        INSERT INTO bfp.damage SELECT %2$L, k, kind FROM kinds WHERE kind IS NOT NULL $q$, t, pipe);
    EXECUTE format('DELETE FROM %s t USING bfp.damage d WHERE d.pipe = %L AND d.k = t.k AND d.kind = ''deleted''',
                   t, pipe);
    EXECUTE format('UPDATE %s t SET a = coalesce(t.a, 0) + 1000, b = ''damaged'' FROM bfp.damage d
                     WHERE d.pipe = %L AND d.k = t.k AND d.kind = ''modified''', t, pipe);
    EXECUTE format('UPDATE %s t SET v = t.v + 1000000, a = coalesce(t.a, 0) + 2000 FROM bfp.damage d
                     WHERE d.pipe = %L AND d.k = t.k AND d.kind = ''bumped''', t, pipe);
    EXECUTE format('INSERT INTO bfp.snap SELECT %L, k, v, a, b, p, del FROM %s', pipe, t);
END $$;

-- plan_text(pipe, lo, hi): what backfill_plan says, in the form of run_text
CREATE FUNCTION bfp.plan_text(pipe text, lo bigint, hi bigint) RETURNS text LANGUAGE sql AS $$
  SELECT format('read=%s ins=%s upd=%s del=%s unch=%s rej=%s',
                max(rows) FILTER (WHERE kind = 'read'), max(rows) FILTER (WHERE kind = 'inserted'),
                max(rows) FILTER (WHERE kind = 'updated'), max(rows) FILTER (WHERE kind = 'deleted'),
                max(rows) FILTER (WHERE kind = 'unchanged'), max(rows) FILTER (WHERE kind = 'rejected'))
    FROM pipeline.backfill_plan($1, $2::text, $3::text) $$;

CREATE FUNCTION bfp.run_text(run_id bigint) RETURNS text LANGUAGE sql AS $$
  SELECT format('read=%s ins=%s upd=%s del=%s unch=%s rej=%s', rows_read, rows_inserted, rows_updated,
                rows_deleted, rows_unchanged, rows_rejected)
    FROM pipeline.runs WHERE run_id = $1 $$;

-- the batches of a backfill of b_pt: one per value of p in the range
CREATE FUNCTION bfp.partitions(lo bigint, hi bigint) RETURNS bigint LANGUAGE sql AS
  $$ SELECT count(DISTINCT p) + max(CASE WHEN p IS NULL THEN 1 ELSE 0 END) FROM bfp.stg
      WHERE v BETWEEN $1 AND $2 $$;

DO $driver$
DECLARE
    nseeds integer := current_setting('bfp.nseeds')::int;
    steps integer := current_setting('bfp.steps')::int;
    backfills integer := current_setting('bfp.backfills')::int;
    seed integer;
    step integer;
    i integer;
    pipe text;
    lo bigint;
    hi bigint;
    maxv bigint;
    batch integer;
    planned text;
    wm text;
    run record;
    d text;
BEGIN
    FOR seed IN 1..nseeds LOOP
        PERFORM setseed(seed / (nseeds + 1.0));
        PERFORM bfp.setup_seed();
        COMMIT;
        -- the history, loaded by normal runs at random points
        FOR step IN 1..steps LOOP
            PERFORM bfp.add_rows(1 + floor(random() * 4)::int);
            COMMIT;
            CONTINUE WHEN random() >= 0.3;
            FOREACH pipe IN ARRAY ARRAY['b_mh', 'b_ms', 'b_ak', 'b_pt'] LOOP
                IF pipe IN ('b_mh', 'b_pt') AND random() < 0.4 THEN
                    CALL pipeline.run_batched(pipe, 1 + floor(random() * 4)::int);
                ELSE
                    PERFORM pipeline.run(pipe);
                END IF;
                COMMIT;
            END LOOP;
        END LOOP;
        FOREACH pipe IN ARRAY ARRAY['b_mh', 'b_ms', 'b_ak', 'b_pt'] LOOP
            PERFORM pipeline.run(pipe);
            COMMIT;
            -- loaded: a merge target is the newest live version of each key
            IF pipe IN ('b_mh', 'b_pt') THEN
                -- (a version that changed nothing but v leaves the target's v: compare without it)
                EXECUTE format($q$
                    SELECT string_agg(x::text, ' ') FROM (
                      (SELECT k, a, b, p, del FROM %1$s
                       EXCEPT ALL SELECT k, a, b, p, del FROM bfp.newest WHERE NOT del)
                      UNION ALL
                      (SELECT k, a, b, p, del FROM bfp.newest WHERE NOT del
                       EXCEPT ALL SELECT k, a, b, p, del FROM %1$s)) x $q$, bfp.target_of(pipe)) INTO d;
                INSERT INTO bfp.checks (seed, pipe, what, ok, detail)
                VALUES (seed, pipe, 'loaded', d IS NULL, d);
            ELSE
                INSERT INTO bfp.checks (seed, pipe, what, ok, detail)
                SELECT seed, pipe, 'loaded', status = 'succeeded', status
                  FROM pipeline.runs WHERE pipeline_name = pipe ORDER BY run_id DESC LIMIT 1;
            END IF;
            PERFORM bfp.damage(pipe);
            COMMIT;
        END LOOP;
        -- backfills of random ranges
        maxv := (SELECT max(v) FROM bfp.stg);
        FOR i IN 1..backfills LOOP
            FOREACH pipe IN ARRAY ARRAY['b_mh', 'b_ms', 'b_ak', 'b_pt'] LOOP
                lo := 1 + floor(random() * maxv)::bigint;
                hi := lo + floor(random() * maxv / 2)::bigint;
                batch := CASE WHEN random() < 0.3 THEN NULL ELSE 1 + floor(random() * 6)::int END;
                wm := (SELECT watermark FROM pipeline.pipelines WHERE name = pipe);
                planned := bfp.plan_text(pipe, lo, hi);
                COMMIT;
                CALL pipeline.backfill(pipe, lo::text, hi::text, batch);
                INSERT INTO bfp.ranges VALUES (pipe, lo, hi);
                SELECT r.run_id, r.triggered_by, r.batches INTO run
                  FROM pipeline.runs r WHERE r.pipeline_name = pipe ORDER BY r.run_id DESC LIMIT 1;
                INSERT INTO bfp.log VALUES (seed, pipe, run.run_id, batch, lo, hi, planned);
                d := bfp.differs(pipe, bfp.target_of(pipe));
                INSERT INTO bfp.checks (seed, pipe, what, ok, detail)
                VALUES (seed, pipe, 'contents', d = '',
                        format('after backfill [%s, %s] by %s: %s', lo, hi, coalesce(batch::text, 'one'), d));
                INSERT INTO bfp.checks (seed, pipe, what, ok, detail)
                VALUES (seed, pipe, 'counts',
                        run.triggered_by = 'backfill' AND bfp.run_text(run.run_id) = planned
                        AND (pipe <> 'b_pt' OR run.batches = bfp.partitions(lo, hi))
                        AND (pipe = 'b_pt' OR batch IS NOT NULL OR run.batches = 1),
                        format('backfill [%s, %s] by %s: run %s (%s, %s batches), planned %s', lo, hi,
                               coalesce(batch::text, 'one'), bfp.run_text(run.run_id), run.triggered_by,
                               run.batches, planned));
                INSERT INTO bfp.checks (seed, pipe, what, ok, detail)
                SELECT seed, pipe, 'watermark', w.watermark IS NOT DISTINCT FROM wm,
                       format('before %s, after %s', wm, w.watermark)
                  FROM pipeline.pipelines w WHERE w.name = pipe;
                COMMIT;
            END LOOP;
        END LOOP;
        INSERT INTO bfp.coverage
        SELECT seed, 'bumped rows in a range', count(*)
          FROM bfp.damage d JOIN bfp.newest n USING (k)
         WHERE d.kind = 'bumped'
           AND EXISTS (SELECT 1 FROM bfp.ranges r WHERE r.pipe = d.pipe AND n.v BETWEEN r.lo AND r.hi)
        UNION ALL
        SELECT seed, 'keys moved between partitions', count(*)
          FROM (SELECT k FROM bfp.stg WHERE k IS NOT NULL GROUP BY k HAVING count(DISTINCT p) > 1) x;
        COMMIT;
    END LOOP;
END $driver$;

CREATE FUNCTION bfp.emit(nseeds integer) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    s integer;
    p text;
    w text;
    n bigint;
    bad bigint;
    first_bad text;
BEGIN
    FOR s IN 1..nseeds LOOP
        FOREACH p IN ARRAY ARRAY['b_mh', 'b_ms', 'b_ak', 'b_pt'] LOOP
            FOREACH w IN ARRAY ARRAY['loaded', 'contents', 'counts', 'watermark'] LOOP
                SELECT count(*), count(*) FILTER (WHERE NOT ok),
                       (SELECT detail FROM bfp.checks c2 WHERE c2.seed = s AND c2.pipe = p AND c2.what = w
                           AND NOT c2.ok ORDER BY id LIMIT 1)
                  INTO n, bad, first_bad
                  FROM bfp.checks c WHERE c.seed = s AND c.pipe = p AND c.what = w;
                RETURN NEXT ok(n > 0 AND bad = 0,
                               format('seed %s, %s: %s as the reference says, %s checks', s, p, w, n));
                IF bad > 0 THEN
                    RETURN NEXT diag(format('%s of %s checks failed; first: %s', bad, n, first_bad));
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;
END $$;

SELECT * FROM bfp.emit(:nseeds);

-- the test exercised what it claims to
SELECT cmp_ok((SELECT sum(r.rows_inserted) FROM bfp.log l JOIN pipeline.runs r USING (run_id)),
              '>=', 50::numeric, 'backfills put back deleted rows');
SELECT cmp_ok((SELECT sum(r.rows_updated) FROM bfp.log l JOIN pipeline.runs r USING (run_id)),
              '>=', 30::numeric, 'backfills repaired modified rows');
SELECT cmp_ok((SELECT count(*) FROM bfp.log l JOIN pipeline.runs r USING (run_id) WHERE r.batches > 1),
              '>=', 20::bigint, 'backfills in several batches');
SELECT cmp_ok((SELECT sum(n) FROM bfp.coverage WHERE what = 'bumped rows in a range'), '>=', 10::numeric,
              'rows moved past their source were in backfilled ranges, and kept');
SELECT cmp_ok((SELECT min(n) FROM bfp.coverage WHERE what = 'keys moved between partitions'), '>=', 1::bigint,
              'every seed has keys that moved between partitions');

SELECT * FROM finish();
