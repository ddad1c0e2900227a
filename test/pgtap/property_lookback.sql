\ir common/preamble.sql
-- test/pgtap/property_lookback.sql
--
-- Property test, timestamptz incremental column with a 10-minute lookback.
--
-- For each of 20 fixed seeds, a plpgsql driver generates random staging rows
-- (small key space, NULL keys, NULLs in non-key columns, delete flags, several
-- rows with the same timestamp) and late rows: timestamps at or below the
-- current watermark but strictly inside the lookback (down to watermark minus
-- 9 min 50 s).  At random points it runs three pipelines:
--
--   l_mh  merge, hard deletes   (plain runs, or CALL run_batched with a random batch_rows)
--   l_ms  merge, soft deletes   (plain runs)
--   l_ak  append with a key     (plain runs)
--
-- After each run the target must equal a plain-SQL model that applies the
-- window (watermark - lookback, high-water mark] with the documented
-- de-duplication (greatest timestamp; ties: deleted row, then v1, v2 greater
-- wins, NULLs lose), the counts of each plain run must equal the model's, and
-- the watermark must be the high-water mark.  Because every late row is inside
-- the lookback, l_mh must also end equal to DISTINCT ON over every staging
-- row minus deleted keys, whatever the timing and batching of its runs.
--
-- Non-finite values (docs/exactly-once.md): rows at +infinity arrive at
-- random and are sometimes fixed later (given the current time); they never
-- become the watermark, are never loaded while at infinity, and every run
-- counts them as read and rejected. Rows at -infinity arrive before the first
-- run of a seed and load like any other row.
SET client_min_messages = error;  -- runs over rows at infinity WARN every time
SET TimeZone = 'UTC';

\set nseeds 20
\set steps 25
-- Two points of the semantics (docs/reference/run.md), encoded in the model:
--   inc_counts  off: a row whose only change is a newer incremental value is
--                    unchanged, and the target keeps its values
--   soft_values off: a soft delete keeps the target row's values, sets the
--                    delete flag and takes the tombstone's incremental value
\set inc_counts off
\set soft_values off
SELECT set_config('plb.inc_counts', :'inc_counts', false) AS inc_counts_set,
       set_config('plb.soft_values', :'soft_values', false) AS soft_values_set \gset
SELECT set_config('plb.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('plb.steps', :'steps', false) AS steps_set \gset
-- per seed: 3 pipes x (contents, counts, watermark) + 1 timing-free reference
SELECT plan(:nseeds * 10 + 8);

CREATE SCHEMA plb;
CREATE TABLE plb.checks (
    id     bigserial PRIMARY KEY,
    seed   integer NOT NULL,
    pipe   text NOT NULL,
    what   text NOT NULL,
    ok     boolean NOT NULL,
    detail text
);
CREATE TABLE plb.model_wm (pipe text PRIMARY KEY, wm timestamptz);
CREATE TABLE plb.model (pipe text, k integer, ts timestamptz, v1 integer, v2 text, del boolean);
CREATE TABLE plb.win (k integer, ts timestamptz, v1 integer, v2 text, del boolean);
CREATE TABLE plb.lat (k integer, ts timestamptz, v1 integer, v2 text, del boolean);
CREATE TABLE plb.runlog (seed integer, pipe text, run_id bigint, batched boolean, late_rows integer);
CREATE TABLE plb.nonfinite (seed integer, what text);

-- model_run applies one run of pipe p to the model and returns the expected counts.
CREATE FUNCTION plb.model_run(p text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := (SELECT wm - interval '10 minutes' FROM plb.model_wm WHERE pipe = p);
    hi timestamptz := (SELECT max(ts) FROM plb.stg WHERE ts < 'infinity');
    n_inf bigint := (SELECT count(*) FROM plb.stg WHERE ts = 'infinity');
    n_read bigint; n_rej bigint; n_lat bigint;
    n_ins bigint := 0; n_upd bigint := 0; n_del bigint := 0;
    inc_counts boolean := current_setting('plb.inc_counts')::boolean;
    soft_values boolean := current_setting('plb.soft_values')::boolean;
BEGIN
    DELETE FROM plb.win;
    DELETE FROM plb.lat;
    INSERT INTO plb.win SELECT k, ts, v1, v2, del FROM plb.stg WHERE (lo IS NULL OR ts > lo) AND ts <= hi;
    -- ties: a flagged delete first, then v1, v2 greater; l_ak has no delete
    -- column, so for it del is an ordinary last column
    INSERT INTO plb.lat
    SELECT DISTINCT ON (k) * FROM plb.win WHERE k IS NOT NULL
     ORDER BY k, ts DESC, CASE WHEN p <> 'l_ak' THEN del END DESC,
              v1 DESC NULLS LAST, v2 DESC NULLS LAST, del DESC;
    SELECT count(*), count(*) FILTER (WHERE k IS NULL) INTO n_read, n_rej FROM plb.win;
    SELECT count(*) INTO n_lat FROM plb.lat;
    n_read := n_read + n_inf;
    n_rej := n_rej + n_inf;
    IF p = 'l_ak' THEN
        SELECT count(*) INTO n_ins FROM plb.lat l
         WHERE NOT EXISTS (SELECT 1 FROM plb.model m WHERE m.pipe = p AND m.k = l.k);
        INSERT INTO plb.model SELECT p, l.* FROM plb.lat l
         WHERE NOT EXISTS (SELECT 1 FROM plb.model m WHERE m.pipe = p AND m.k = l.k);
    ELSE
        SELECT count(*) INTO n_ins FROM plb.lat l
         WHERE NOT l.del AND NOT EXISTS (SELECT 1 FROM plb.model m WHERE m.pipe = p AND m.k = l.k);
        SELECT count(*) INTO n_upd FROM plb.lat l JOIN plb.model m ON m.pipe = p AND m.k = l.k
         WHERE NOT l.del AND ((inc_counts AND l.ts IS DISTINCT FROM m.ts)
                              OR (l.v1, l.v2, l.del) IS DISTINCT FROM (m.v1, m.v2, m.del));
        SELECT count(*) INTO n_del FROM plb.lat l JOIN plb.model m ON m.pipe = p AND m.k = l.k
         WHERE l.del AND (p = 'l_mh' OR NOT m.del);
        IF p = 'l_mh' THEN
            DELETE FROM plb.model m USING plb.lat l WHERE m.pipe = p AND m.k = l.k AND l.del;
        ELSE
            UPDATE plb.model m
               SET del = true,
                   ts = l.ts,
                   v1 = CASE WHEN soft_values THEN l.v1 ELSE m.v1 END,
                   v2 = CASE WHEN soft_values THEN l.v2 ELSE m.v2 END
              FROM plb.lat l
             WHERE m.pipe = p AND m.k = l.k AND l.del AND NOT m.del;
        END IF;
        UPDATE plb.model m SET ts = l.ts, v1 = l.v1, v2 = l.v2, del = l.del FROM plb.lat l
         WHERE m.pipe = p AND m.k = l.k AND NOT l.del
           AND ((inc_counts AND l.ts IS DISTINCT FROM m.ts)
                OR (l.v1, l.v2, l.del) IS DISTINCT FROM (m.v1, m.v2, m.del));
        INSERT INTO plb.model SELECT p, l.* FROM plb.lat l
         WHERE NOT l.del AND NOT EXISTS (SELECT 1 FROM plb.model m WHERE m.pipe = p AND m.k = l.k);
    END IF;
    IF hi IS NOT NULL THEN
        UPDATE plb.model_wm SET wm = hi WHERE pipe = p;
    END IF;
    RETURN format('succeeded read=%s ins=%s upd=%s del=%s unch=%s rej=%s',
                  n_read, n_ins, n_upd, n_del, n_lat - n_ins - n_upd - n_del, n_rej);
END $$;

CREATE FUNCTION plb.check_run(seed integer, p text, run_id bigint, expected text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    got text;
    diff bigint;
    sample text;
    wm_engine timestamptz;
    wm_model timestamptz;
BEGIN
    IF expected IS NOT NULL THEN
        SELECT format('%s read=%s ins=%s upd=%s del=%s unch=%s rej=%s', r.status, r.rows_read,
                      r.rows_inserted, r.rows_updated, r.rows_deleted, r.rows_unchanged, r.rows_rejected)
          INTO got FROM pipeline.runs r WHERE r.run_id = check_run.run_id;
        INSERT INTO plb.checks (seed, pipe, what, ok, detail)
        VALUES (seed, p, 'counts', got IS NOT DISTINCT FROM expected,
                format('run %s: got %s, model %s', run_id, coalesce(got, '(no run record)'), expected));
    ELSE
        INSERT INTO plb.checks (seed, pipe, what, ok, detail)
        SELECT seed, p, 'status', r.status = 'succeeded', format('run %s: %s', r.run_id, r.status)
          FROM pipeline.runs r WHERE r.run_id = check_run.run_id;
    END IF;
    -- (with inc_counts off, the timestamp a batched l_mh run leaves depends on
    -- its batch boundaries, which the model does not replay: compare without it)
    EXECUTE format($q$
        SELECT count(*), string_agg(d::text, ' ')
          FROM ((SELECT 'engine-only' AS side, * FROM (SELECT k, %3$s, v1, v2, del FROM plb.%1$I
                  EXCEPT ALL SELECT k, %3$s, v1, v2, del FROM plb.model WHERE pipe = %2$L) a)
                UNION ALL
                (SELECT 'model-only', * FROM (SELECT k, %3$s, v1, v2, del FROM plb.model WHERE pipe = %2$L
                  EXCEPT ALL SELECT k, %3$s, v1, v2, del FROM plb.%1$I) b)) d $q$,
        't_' || substr(p, 3), p,
        CASE WHEN p = 'l_mh' AND NOT current_setting('plb.inc_counts')::boolean
             THEN 'NULL::timestamptz AS ts' ELSE 'ts' END) INTO diff, sample;
    INSERT INTO plb.checks (seed, pipe, what, ok, detail)
    VALUES (seed, p, 'contents', diff = 0, format('after run %s: %s rows differ: %s', run_id, diff, sample));
    SELECT watermark::timestamptz INTO wm_engine FROM pipeline.pipelines WHERE name = p;
    SELECT wm INTO wm_model FROM plb.model_wm WHERE pipe = p;
    INSERT INTO plb.checks (seed, pipe, what, ok, detail)
    VALUES (seed, p, 'watermark', wm_engine IS NOT DISTINCT FROM wm_model,
            format('after run %s: engine %s, model %s', run_id, wm_engine, wm_model));
END $$;

CREATE FUNCTION plb.setup_seed() RETURNS void LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
    FOREACH p IN ARRAY ARRAY['l_mh', 'l_ms', 'l_ak'] LOOP
        IF EXISTS (SELECT 1 FROM pipeline.pipelines WHERE name = p) THEN
            PERFORM pipeline.drop_pipeline(p, drop_target => true);
        END IF;
    END LOOP;
    DROP TABLE IF EXISTS plb.stg;
    TRUNCATE plb.model, plb.model_wm;
    INSERT INTO plb.model_wm VALUES ('l_mh', NULL), ('l_ms', NULL), ('l_ak', NULL);
    CREATE TABLE plb.stg (
        k   integer,
        ts  timestamptz NOT NULL,
        v1  integer,
        v2  text,
        del boolean NOT NULL DEFAULT false
    );
    PERFORM pipeline.create_pipeline('l_mh', 'plb.stg', 'plb.t_mh', '{k}', 'ts', delete_column => 'del',
                                     lookback => '10 minutes');
    PERFORM pipeline.create_pipeline('l_ms', 'plb.stg', 'plb.t_ms', '{k}', 'ts', delete_column => 'del',
                                     soft_delete => true, lookback => '10 minutes');
    PERFORM pipeline.create_pipeline('l_ak', 'plb.stg', 'plb.t_ak', '{k}', 'ts', mode => 'append',
                                     lookback => '10 minutes');
END $$;

CREATE FUNCTION plb.rnd_key() RETURNS integer LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.05 THEN NULL ELSE 1 + floor(random() * 10)::int END $$;
CREATE FUNCTION plb.rnd_v1() RETURNS integer LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.25 THEN NULL ELSE floor(random() * 4)::int END $$;
CREATE FUNCTION plb.rnd_v2() RETURNS text LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.25 THEN NULL ELSE (ARRAY['a', 'b', 'c'])[1 + floor(random() * 3)::int] END $$;

DO $driver$
DECLARE
    nseeds integer := current_setting('plb.nseeds')::int;
    steps integer := current_setting('plb.steps')::int;
    base timestamptz := '2024-01-01 00:00:00+00';
    seed integer;
    step integer;
    i integer;
    n integer;
    p text;
    clock timestamptz;
    last_ts timestamptz;
    wm timestamptz;
    ts_row timestamptz;
    expected text;
    run_id bigint;
    late integer;
    b integer;
    inc_counts boolean := current_setting('plb.inc_counts')::boolean;
BEGIN
    FOR seed IN 1..nseeds LOOP
        PERFORM setseed(seed / (nseeds + 1.0));
        PERFORM plb.setup_seed();
        clock := base;
        last_ts := base;
        wm := NULL;
        late := 0;
        COMMIT;
        FOR step IN 1..steps + 1 LOOP
            IF step = 1 AND random() < 0.5 THEN
                INSERT INTO plb.stg VALUES (plb.rnd_key(), '-infinity', plb.rnd_v1(), plb.rnd_v2(), false);
                INSERT INTO plb.nonfinite VALUES (seed, '-infinity');
            END IF;
            IF step <= steps AND random() < 0.12 THEN
                INSERT INTO plb.stg VALUES (plb.rnd_key(), 'infinity', plb.rnd_v1(), plb.rnd_v2(), random() < 0.15);
                INSERT INTO plb.nonfinite VALUES (seed, 'infinity');
            END IF;
            IF step <= steps AND random() < 0.08 THEN
                -- a row at infinity is fixed at the source: it becomes a new row
                clock := clock + make_interval(secs => 1 + floor(random() * 60)::int);
                UPDATE plb.stg SET ts = clock
                 WHERE ctid = (SELECT ctid FROM plb.stg WHERE ts = 'infinity' LIMIT 1);
                IF FOUND THEN
                    last_ts := clock;
                    INSERT INTO plb.nonfinite VALUES (seed, 'fixed');
                END IF;
            END IF;
            IF step <= steps THEN
                -- new rows, sometimes several with one timestamp
                n := 1 + floor(random() * 6)::int;
                FOR i IN 1..n LOOP
                    IF random() < 0.25 THEN
                        ts_row := last_ts;
                    ELSE
                        clock := clock + make_interval(secs => 1 + floor(random() * 120)::int);
                        ts_row := clock;
                    END IF;
                    last_ts := ts_row;
                    INSERT INTO plb.stg VALUES (plb.rnd_key(), ts_row, plb.rnd_v1(), plb.rnd_v2(), random() < 0.15);
                    IF random() < 0.5 THEN COMMIT; END IF;
                END LOOP;
                -- late rows: at or below the watermark, strictly inside the lookback
                IF wm IS NOT NULL AND random() < 0.6 THEN
                    FOR i IN 1..1 + floor(random() * 3)::int LOOP
                        ts_row := wm - make_interval(secs => floor(random() * 591)::int);
                        INSERT INTO plb.stg VALUES (plb.rnd_key(), ts_row, plb.rnd_v1(), plb.rnd_v2(),
                                                    random() < 0.15);
                        late := late + 1;
                    END LOOP;
                END IF;
                COMMIT;
                IF random() < 0.05 THEN
                    PERFORM pipeline.reset('l_mh');
                    UPDATE plb.model_wm SET wm = NULL WHERE pipe = 'l_mh';
                    COMMIT;
                END IF;
                CONTINUE WHEN random() >= 0.4;
            END IF;
            -- a run point: every pipeline runs (so they share one watermark)
            FOREACH p IN ARRAY ARRAY['l_mh', 'l_ms', 'l_ak'] LOOP
                IF p = 'l_mh' AND step <= steps AND random() < 0.4 THEN
                    b := 1 + floor(random() * 5)::int;
                    PERFORM plb.model_run(p);
                    CALL pipeline.run_batched(p, b);
                    run_id := (SELECT max(h.run_id) FROM pipeline.runs h WHERE h.pipeline_name = p);
                    PERFORM plb.check_run(seed, p, run_id, NULL);
                    INSERT INTO plb.runlog VALUES (seed, p, run_id, true, late);
                ELSE
                    expected := plb.model_run(p);
                    run_id := pipeline.run(p);
                    COMMIT;
                    PERFORM plb.check_run(seed, p, run_id, expected);
                    INSERT INTO plb.runlog VALUES (seed, p, run_id, false, late);
                END IF;
                COMMIT;
            END LOOP;
            wm := (SELECT max(ts) FROM plb.stg WHERE ts < 'infinity');
            -- sometimes run again at once: the lookback is re-read, nothing changes
            IF random() < 0.2 THEN
                FOREACH p IN ARRAY ARRAY['l_mh', 'l_ms', 'l_ak'] LOOP
                    expected := plb.model_run(p);
                    run_id := pipeline.run(p);
                    COMMIT;
                    PERFORM plb.check_run(seed, p, run_id, expected);
                    INSERT INTO plb.runlog VALUES (seed, p, run_id, false, late);
                    COMMIT;
                END LOOP;
            END IF;
        END LOOP;
        -- (with inc_counts off, the target keeps the timestamp of the last real change)
        INSERT INTO plb.checks (seed, pipe, what, ok, detail)
        SELECT seed, 'l_mh', 'reference', count(*) = 0, string_agg(d::text, ' ')
          FROM ((SELECT k, CASE WHEN inc_counts THEN ts END, v1, v2, del FROM plb.t_mh
                 EXCEPT ALL
                 SELECT k, CASE WHEN inc_counts THEN ts END, v1, v2, del
                   FROM (SELECT DISTINCT ON (k) k, ts, v1, v2, del FROM plb.stg
                          WHERE k IS NOT NULL AND ts < 'infinity'
                          ORDER BY k, ts DESC, del DESC, v1 DESC NULLS LAST, v2 DESC NULLS LAST) x
                  WHERE NOT del)
                UNION ALL
                (SELECT k, CASE WHEN inc_counts THEN ts END, v1, v2, del
                   FROM (SELECT DISTINCT ON (k) k, ts, v1, v2, del FROM plb.stg
                          WHERE k IS NOT NULL AND ts < 'infinity'
                          ORDER BY k, ts DESC, del DESC, v1 DESC NULLS LAST, v2 DESC NULLS LAST) x
                  WHERE NOT del
                 EXCEPT ALL
                 SELECT k, CASE WHEN inc_counts THEN ts END, v1, v2, del FROM plb.t_mh)) d;
        COMMIT;
    END LOOP;
END $driver$;

CREATE FUNCTION plb.emit(nseeds integer) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    s integer;
    p text;
    w text;
    n bigint;
    bad bigint;
    first_bad text;
BEGIN
    FOR s IN 1..nseeds LOOP
        FOREACH p IN ARRAY ARRAY['l_mh', 'l_ms', 'l_ak'] LOOP
            FOREACH w IN ARRAY ARRAY['contents', CASE WHEN p = 'l_mh' THEN 'counts or status' ELSE 'counts' END,
                                     'watermark'] LOOP
                SELECT count(*), count(*) FILTER (WHERE NOT ok),
                       (SELECT detail FROM plb.checks c2 WHERE c2.seed = s AND c2.pipe = p
                           AND c2.what = ANY (string_to_array(w, ' or ')) AND NOT c2.ok ORDER BY id LIMIT 1)
                  INTO n, bad, first_bad
                  FROM plb.checks c WHERE c.seed = s AND c.pipe = p AND c.what = ANY (string_to_array(w, ' or '));
                RETURN NEXT ok(n > 0 AND bad = 0,
                               format('seed %s, %s: %s match the model after each of %s runs', s, p, w, n));
                IF bad > 0 THEN
                    RETURN NEXT diag(format('%s of %s checks failed; first: %s', bad, n, first_bad));
                END IF;
            END LOOP;
        END LOOP;
        SELECT count(*), count(*) FILTER (WHERE NOT ok), min(detail) INTO n, bad, first_bad
          FROM plb.checks c WHERE c.seed = s AND c.pipe = 'l_mh' AND c.what = 'reference';
        RETURN NEXT ok(n = 1 AND bad = 0,
                       format('seed %s, l_mh: final target equals DISTINCT ON over every staging row minus deletes', s));
        IF bad > 0 THEN
            RETURN NEXT diag('rows that differ: ' || first_bad);
        END IF;
    END LOOP;
END $$;

SELECT * FROM plb.emit(:nseeds);

SELECT cmp_ok((SELECT max(late_rows) FROM plb.runlog GROUP BY seed ORDER BY 1 LIMIT 1), '>=', 3,
              'every seed generated late rows');
SELECT cmp_ok((SELECT count(*) FROM plb.runlog WHERE batched), '>=', 40::bigint, 'batched runs with lookback');
SELECT cmp_ok((SELECT count(*) FROM (SELECT 1 FROM plb.stg GROUP BY k, ts HAVING count(*) > 1) x), '>=', 1::bigint,
              'rows sharing a key and a timestamp (ties) in the last seed');
SELECT cmp_ok((SELECT sum(rows_unchanged) FROM plb.runlog l JOIN pipeline.runs r USING (run_id)
                WHERE l.pipe = 'l_mh'), '>=', 200::numeric, 're-read rows found unchanged');
SELECT cmp_ok((SELECT sum(rows_deleted) FROM plb.runlog l JOIN pipeline.runs r USING (run_id)),
              '>=', 50::numeric, 'deletes applied');
SELECT cmp_ok((SELECT count(*) FROM plb.nonfinite WHERE what = 'infinity'), '>=', 20::bigint,
              'rows at infinity were generated');
SELECT cmp_ok((SELECT count(*) FROM plb.nonfinite WHERE what = 'fixed'), '>=', 5::bigint,
              'rows at infinity were fixed and loaded later');
SELECT cmp_ok((SELECT count(*) FROM plb.nonfinite WHERE what = '-infinity'), '>=', 5::bigint,
              'rows at -infinity were generated');

SELECT * FROM finish();
