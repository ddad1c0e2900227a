\ir common/preamble.sql
-- test/pgtap/property_incremental.sql
--
-- Property test, integer incremental column fed by a sequence (the strict
-- case: nothing may ever be missed or applied twice).
--
-- For each of 20 fixed seeds, a plpgsql driver generates random staging
-- data (duplicate keys from a small key space, NULL keys, NULLs in non-key
-- columns, delete flags), loads it in random batch sizes (one transaction
-- per row or per burst), and at random points runs six pipelines, sometimes
-- plainly, sometimes with CALL run_batched and a random batch_rows,
-- sometimes twice in a row (nothing new), sometimes after reset():
--
--   p_mh  merge,  hard deletes     (source prop.stg)
--   p_ms  merge,  soft deletes     (source prop.stg)
--   p_ak  append with a key        (source prop.stg)
--   p_an  append without a key     (source prop.stg)
--   p_fh  full,   hard deletes     (source prop.snap, a mutable snapshot)
--   p_fs  full,   soft deletes     (source prop.snap)
--
-- After every run the target must equal a reference model written in plain
-- SQL (prop.model_*), the run record's counts must equal the model's, and the
-- watermark must be the high-water mark.  The model applies, per window (per
-- batch for batched runs: consecutive groups of batch_rows rows in
-- incremental order), the documented semantics: one row per key, the
-- greatest incremental value wins (ties: a deleted row, then the remaining
-- columns in column order, greater wins, NULLs lose).  At the end, p_mh and
-- p_fh are also compared with a reference that does not depend on run timing:
-- DISTINCT ON over every source row, minus deleted keys.
--
-- The driver runs in one DO block that commits as it goes (CALL run_batched
-- must not run inside a transaction block or an exception block), records
-- every check in prop.checks, and the TAP lines are emitted at the end.

\set nseeds 20
\set steps 25
-- Two points of the semantics (docs/reference/run.md), encoded in the model:
--   inc_counts  off: a row whose only change is a newer incremental value is
--                    unchanged, and the target keeps its values
--   soft_values off: a soft delete keeps the target row's values, sets the
--                    delete flag and takes the tombstone's incremental value
\set inc_counts off
\set soft_values off
SELECT set_config('prop.inc_counts', :'inc_counts', false) AS inc_counts_set,
       set_config('prop.soft_values', :'soft_values', false) AS soft_values_set \gset
-- (psql does not interpolate inside the dollar-quoted DO body: pass them as settings)
SELECT set_config('prop.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('prop.steps', :'steps', false) AS steps_set \gset
-- per seed: 6 pipes x (contents, counts) + 4 watermarks + 2 timing-free references
SELECT plan(:nseeds * 18 + 9);

CREATE SCHEMA prop;
CREATE SEQUENCE prop.stg_seq;
CREATE TABLE prop.checks (
    id     bigserial PRIMARY KEY,
    seed   integer NOT NULL,
    pipe   text NOT NULL,
    what   text NOT NULL,
    ok     boolean NOT NULL,
    detail text
);
CREATE TABLE prop.pipes (pipe text PRIMARY KEY, ord integer NOT NULL, src text NOT NULL, mode text NOT NULL);
INSERT INTO prop.pipes VALUES ('p_mh', 1, 'stg', 'merge'), ('p_ms', 2, 'stg', 'merge soft'),
                              ('p_ak', 3, 'stg', 'append'), ('p_an', 4, 'stg', 'append nokey'),
                              ('p_fh', 5, 'snap', 'full'), ('p_fs', 6, 'snap', 'full soft');
CREATE TABLE prop.model_wm (pipe text PRIMARY KEY, wm bigint);
CREATE TABLE prop.model_log (pipe text, k integer, inc bigint, v1 integer, v2 text, del boolean);
CREATE TABLE prop.model_snap (pipe text, k integer, v1 integer, v2 text, del boolean, rid integer);
CREATE TABLE prop.win (k integer, inc bigint, v1 integer, v2 text, del boolean, rid integer);
CREATE TABLE prop.lat (k integer, inc bigint, v1 integer, v2 text, del boolean, rid integer);
CREATE TABLE prop.runlog (seed integer, pipe text, run_id bigint, batched boolean, batch_rows integer);
CREATE TABLE prop.resetlog (seed integer, pipe text);

-- The reference model -----------------------------------------------------------

-- model_apply applies the de-duplicated rows in prop.lat to the model of pipe
-- p and returns the counts; prop.win holds the window (for read / rejected).
CREATE FUNCTION prop.model_apply(p text, full_mode boolean,
    OUT n_read bigint, OUT n_ins bigint, OUT n_upd bigint, OUT n_del bigint,
    OUT n_unch bigint, OUT n_rej bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_mode text := (SELECT pp.mode FROM prop.pipes pp WHERE pp.pipe = p);
    inc_counts boolean := current_setting('prop.inc_counts')::boolean;
    soft_values boolean := current_setting('prop.soft_values')::boolean;
    n_lat bigint;
    n_del_lat bigint;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE k IS NULL) INTO n_read, n_rej FROM prop.win;
    n_upd := 0; n_del := 0; n_unch := 0;
    IF v_mode = 'append nokey' THEN
        INSERT INTO prop.model_log SELECT p, k, inc, v1, v2, del FROM prop.win;
        n_ins := n_read; n_rej := 0;
        RETURN;
    END IF;
    SELECT count(*) INTO n_lat FROM prop.lat;

    IF NOT full_mode THEN
        IF v_mode = 'append' THEN
            SELECT count(*) INTO n_ins FROM prop.lat l
             WHERE NOT EXISTS (SELECT 1 FROM prop.model_log m WHERE m.pipe = p AND m.k = l.k);
            INSERT INTO prop.model_log
            SELECT p, l.k, l.inc, l.v1, l.v2, l.del FROM prop.lat l
             WHERE NOT EXISTS (SELECT 1 FROM prop.model_log m WHERE m.pipe = p AND m.k = l.k);
            n_unch := n_lat - n_ins;
            RETURN;
        END IF;
        SELECT count(*) INTO n_ins FROM prop.lat l
         WHERE NOT l.del AND NOT EXISTS (SELECT 1 FROM prop.model_log m WHERE m.pipe = p AND m.k = l.k);
        SELECT count(*) INTO n_upd FROM prop.lat l JOIN prop.model_log m ON m.pipe = p AND m.k = l.k
         WHERE NOT l.del AND ((inc_counts AND l.inc IS DISTINCT FROM m.inc)
                              OR (l.v1, l.v2, l.del) IS DISTINCT FROM (m.v1, m.v2, m.del));
        SELECT count(*) INTO n_del FROM prop.lat l JOIN prop.model_log m ON m.pipe = p AND m.k = l.k
         WHERE l.del AND (v_mode = 'merge' OR NOT m.del);
        n_unch := n_lat - n_ins - n_upd - n_del;
        IF v_mode = 'merge' THEN
            DELETE FROM prop.model_log m USING prop.lat l WHERE m.pipe = p AND m.k = l.k AND l.del;
        ELSE
            UPDATE prop.model_log m
               SET del = true,
                   inc = l.inc,
                   v1 = CASE WHEN soft_values THEN l.v1 ELSE m.v1 END,
                   v2 = CASE WHEN soft_values THEN l.v2 ELSE m.v2 END
              FROM prop.lat l
             WHERE m.pipe = p AND m.k = l.k AND l.del AND NOT m.del;
        END IF;
        UPDATE prop.model_log m SET inc = l.inc, v1 = l.v1, v2 = l.v2, del = l.del
          FROM prop.lat l
         WHERE m.pipe = p AND m.k = l.k AND NOT l.del
           AND ((inc_counts AND l.inc IS DISTINCT FROM m.inc)
                OR (l.v1, l.v2, l.del) IS DISTINCT FROM (m.v1, m.v2, m.del));
        INSERT INTO prop.model_log
        SELECT p, l.k, l.inc, l.v1, l.v2, l.del FROM prop.lat l
         WHERE NOT l.del AND NOT EXISTS (SELECT 1 FROM prop.model_log m WHERE m.pipe = p AND m.k = l.k);
        RETURN;
    END IF;

    -- full: the whole snapshot; keys that vanished are deleted too
    SELECT count(*) INTO n_ins FROM prop.lat l
     WHERE NOT l.del AND NOT EXISTS (SELECT 1 FROM prop.model_snap m WHERE m.pipe = p AND m.k = l.k);
    SELECT count(*) INTO n_upd FROM prop.lat l JOIN prop.model_snap m ON m.pipe = p AND m.k = l.k
     WHERE NOT l.del AND (l.v1, l.v2, l.del, l.rid) IS DISTINCT FROM (m.v1, m.v2, m.del, m.rid);
    SELECT count(*) INTO n_del_lat FROM prop.lat l JOIN prop.model_snap m ON m.pipe = p AND m.k = l.k
     WHERE l.del AND (v_mode = 'full' OR NOT m.del);
    SELECT n_del_lat + count(*) INTO n_del FROM prop.model_snap m
     WHERE m.pipe = p AND (v_mode = 'full' OR NOT m.del)
       AND NOT EXISTS (SELECT 1 FROM prop.lat l WHERE l.k = m.k);
    n_unch := n_lat - n_ins - n_upd - n_del_lat;
    IF v_mode = 'full' THEN
        DELETE FROM prop.model_snap m
         WHERE m.pipe = p
           AND (EXISTS (SELECT 1 FROM prop.lat l WHERE l.k = m.k AND l.del)
                OR NOT EXISTS (SELECT 1 FROM prop.lat l WHERE l.k = m.k));
    ELSE
        -- a flagged source row; then a key gone from the source (only the flag)
        UPDATE prop.model_snap m
           SET del = true,
               v1 = CASE WHEN soft_values THEN l.v1 ELSE m.v1 END,
               v2 = CASE WHEN soft_values THEN l.v2 ELSE m.v2 END,
               rid = CASE WHEN soft_values THEN l.rid ELSE m.rid END
          FROM prop.lat l
         WHERE m.pipe = p AND NOT m.del AND l.k = m.k AND l.del;
        UPDATE prop.model_snap m SET del = true
         WHERE m.pipe = p AND NOT m.del
           AND NOT EXISTS (SELECT 1 FROM prop.lat l WHERE l.k = m.k);
    END IF;
    UPDATE prop.model_snap m SET v1 = l.v1, v2 = l.v2, del = l.del, rid = l.rid
      FROM prop.lat l
     WHERE m.pipe = p AND m.k = l.k AND NOT l.del
       AND (l.v1, l.v2, l.del, l.rid) IS DISTINCT FROM (m.v1, m.v2, m.del, m.rid);
    INSERT INTO prop.model_snap
    SELECT p, l.k, l.v1, l.v2, l.del, l.rid FROM prop.lat l
     WHERE NOT l.del AND NOT EXISTS (SELECT 1 FROM prop.model_snap m WHERE m.pipe = p AND m.k = l.k);
END $$;

-- model_window loads the window (lo, hi] of prop.stg, or the whole snapshot,
-- into prop.win and its de-duplicated rows into prop.lat.
CREATE FUNCTION prop.model_window(p text, lo bigint, hi bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM prop.win;
    DELETE FROM prop.lat;
    IF (SELECT src FROM prop.pipes WHERE pipe = p) = 'stg' THEN
        INSERT INTO prop.win (k, inc, v1, v2, del)
        SELECT k, inc, v1, v2, del FROM prop.stg WHERE (lo IS NULL OR inc > lo) AND inc <= hi;
        -- column order k, inc, v1, v2, del
        INSERT INTO prop.lat
        SELECT DISTINCT ON (k) * FROM prop.win WHERE k IS NOT NULL
         ORDER BY k, inc DESC, del DESC, v1 DESC NULLS LAST, v2 DESC NULLS LAST;
    ELSE
        INSERT INTO prop.win (k, v1, v2, del, rid) SELECT k, v1, v2, del, rid FROM prop.snap;
        -- no incremental column: every row ties; column order k, v1, v2, del, rid
        INSERT INTO prop.lat
        SELECT DISTINCT ON (k) * FROM prop.win WHERE k IS NOT NULL
         ORDER BY k, del DESC, v1 DESC NULLS LAST, v2 DESC NULLS LAST, rid DESC NULLS LAST;
    END IF;
END $$;

-- model_run applies one run of pipe p (batched with batch_rows b when b is
-- not NULL) to the model, and returns the expected counts as text.
CREATE FUNCTION prop.model_run(p text, b integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo bigint := (SELECT wm FROM prop.model_wm WHERE pipe = p);
    hi bigint := (SELECT max(inc) FROM prop.stg);
    bounds bigint[];
    bound bigint;
    c record;
    t_read bigint := 0; t_ins bigint := 0; t_upd bigint := 0; t_del bigint := 0;
    t_unch bigint := 0; t_rej bigint := 0;
    nb integer := 0;
BEGIN
    IF (SELECT src FROM prop.pipes WHERE pipe = p) = 'snap' THEN
        PERFORM prop.model_window(p, NULL, NULL);
        c := prop.model_apply(p, true);
        RETURN format('succeeded read=%s ins=%s upd=%s del=%s unch=%s rej=%s',
                      c.n_read, c.n_ins, c.n_upd, c.n_del, c.n_unch, c.n_rej);
    END IF;
    IF b IS NULL THEN
        bounds := CASE WHEN EXISTS (SELECT 1 FROM prop.stg WHERE (lo IS NULL OR inc > lo) AND inc <= hi)
                       THEN ARRAY[hi] ELSE ARRAY[]::bigint[] END;
    ELSE
        SELECT coalesce(array_agg(inc ORDER BY inc), ARRAY[]::bigint[]) INTO bounds
          FROM (SELECT inc, row_number() OVER (ORDER BY inc) AS rn, count(*) OVER () AS total
                  FROM prop.stg WHERE (lo IS NULL OR inc > lo) AND inc <= hi) s
         WHERE rn % b = 0 OR rn = total;
    END IF;
    FOREACH bound IN ARRAY bounds LOOP
        PERFORM prop.model_window(p, lo, bound);
        c := prop.model_apply(p, false);
        t_read := t_read + c.n_read; t_ins := t_ins + c.n_ins; t_upd := t_upd + c.n_upd;
        t_del := t_del + c.n_del; t_unch := t_unch + c.n_unch; t_rej := t_rej + c.n_rej;
        nb := nb + 1;
        lo := bound;
    END LOOP;
    IF nb > 0 THEN
        UPDATE prop.model_wm SET wm = hi WHERE pipe = p;
    END IF;
    RETURN format('succeeded read=%s ins=%s upd=%s del=%s unch=%s rej=%s', t_read, t_ins, t_upd,
                  t_del, t_unch, t_rej)
           || CASE WHEN b IS NULL THEN '' ELSE format(' batches=%s', nb) END;
END $$;

-- check_run compares the engine with the model after a run of pipe p.
CREATE FUNCTION prop.check_run(seed integer, p text, run_id bigint, expected text, batched boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    got text;
    diff bigint;
    sample text;
    v_src text := (SELECT pp.src FROM prop.pipes pp WHERE pp.pipe = p);
    wm_engine bigint;
    wm_model bigint;
BEGIN
    SELECT format('%s read=%s ins=%s upd=%s del=%s unch=%s rej=%s', r.status, r.rows_read,
                  r.rows_inserted, r.rows_updated, r.rows_deleted, r.rows_unchanged, r.rows_rejected)
           || CASE WHEN batched THEN format(' batches=%s', r.batches) ELSE '' END
      INTO got FROM pipeline.runs r WHERE r.run_id = check_run.run_id;
    -- a run that found nothing new has no record: its pipeline counted it
    -- and shows its id as its latest run (docs/exactly-once.md)
    IF got IS NULL AND NOT batched AND EXISTS (
           SELECT 1 FROM pipeline.status s
            WHERE s.name = p AND s.last_run_id = check_run.run_id AND s.last_run_status = 'succeeded'
              AND s.last_idle_at = s.last_run_finished_at) THEN
        got := 'succeeded read=0 ins=0 upd=0 del=0 unch=0 rej=0';
    END IF;
    INSERT INTO prop.checks (seed, pipe, what, ok, detail)
    VALUES (seed, p, 'counts', got IS NOT DISTINCT FROM expected,
            format('run %s: got %s, model %s', run_id, coalesce(got, '(no run record)'), expected));

    IF v_src = 'stg' THEN
        EXECUTE format($q$
            SELECT count(*), string_agg(d::text, ' ')
              FROM ((SELECT 'engine-only' AS side, * FROM (SELECT k, inc, v1, v2, del FROM prop.%1$I
                      EXCEPT ALL SELECT k, inc, v1, v2, del FROM prop.model_log WHERE pipe = %2$L) a)
                    UNION ALL
                    (SELECT 'model-only', * FROM (SELECT k, inc, v1, v2, del FROM prop.model_log WHERE pipe = %2$L
                      EXCEPT ALL SELECT k, inc, v1, v2, del FROM prop.%1$I) b)) d $q$,
            't_' || substr(p, 3), p) INTO diff, sample;
    ELSE
        EXECUTE format($q$
            SELECT count(*), string_agg(d::text, ' ')
              FROM ((SELECT 'engine-only' AS side, * FROM (SELECT k, v1, v2, del, rid FROM prop.%1$I
                      EXCEPT ALL SELECT k, v1, v2, del, rid FROM prop.model_snap WHERE pipe = %2$L) a)
                    UNION ALL
                    (SELECT 'model-only', * FROM (SELECT k, v1, v2, del, rid FROM prop.model_snap WHERE pipe = %2$L
                      EXCEPT ALL SELECT k, v1, v2, del, rid FROM prop.%1$I) b)) d $q$,
            't_' || substr(p, 3), p) INTO diff, sample;
    END IF;
    INSERT INTO prop.checks (seed, pipe, what, ok, detail)
    VALUES (seed, p, 'contents', diff = 0, format('after run %s: %s rows differ: %s', run_id, diff, sample));

    IF v_src = 'stg' THEN
        SELECT watermark::bigint INTO wm_engine FROM pipeline.pipelines WHERE name = p;
        SELECT wm INTO wm_model FROM prop.model_wm WHERE pipe = p;
        INSERT INTO prop.checks (seed, pipe, what, ok, detail)
        VALUES (seed, p, 'watermark', wm_engine IS NOT DISTINCT FROM wm_model,
                format('after run %s: engine %s, model %s', run_id, wm_engine, wm_model));
    END IF;
END $$;

-- setup_seed drops the previous seed's pipelines and tables and starts afresh.
CREATE FUNCTION prop.setup_seed() RETURNS void LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
    FOR p IN SELECT pipe FROM prop.pipes ORDER BY ord LOOP
        IF EXISTS (SELECT 1 FROM pipeline.pipelines WHERE name = p) THEN
            PERFORM pipeline.drop_pipeline(p, drop_target => true);
        END IF;
    END LOOP;
    DROP TABLE IF EXISTS prop.stg, prop.snap;
    TRUNCATE prop.model_log, prop.model_snap, prop.model_wm;
    INSERT INTO prop.model_wm SELECT pipe, NULL FROM prop.pipes;
    CREATE TABLE prop.stg (
        k   integer,
        inc bigint NOT NULL DEFAULT nextval('prop.stg_seq'),
        v1  integer,
        v2  text,
        del boolean NOT NULL DEFAULT false
    );
    CREATE TABLE prop.snap (
        k   integer,
        v1  integer,
        v2  text,
        del boolean NOT NULL DEFAULT false,
        rid integer
    );
    PERFORM pipeline.create_pipeline('p_mh', 'prop.stg', 'prop.t_mh', '{k}', 'inc', delete_column => 'del');
    PERFORM pipeline.create_pipeline('p_ms', 'prop.stg', 'prop.t_ms', '{k}', 'inc', delete_column => 'del',
                                     soft_delete => true);
    PERFORM pipeline.create_pipeline('p_ak', 'prop.stg', 'prop.t_ak', '{k}', 'inc', mode => 'append');
    PERFORM pipeline.create_pipeline('p_an', 'prop.stg', 'prop.t_an', NULL, 'inc', mode => 'append');
    PERFORM pipeline.create_pipeline('p_fh', 'prop.snap', 'prop.t_fh', '{k}', mode => 'full',
                                     delete_column => 'del');
    PERFORM pipeline.create_pipeline('p_fs', 'prop.snap', 'prop.t_fs', '{k}', mode => 'full',
                                     delete_column => 'del', soft_delete => true);
END $$;

-- the random row generators
CREATE FUNCTION prop.rnd_key() RETURNS integer LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.06 THEN NULL ELSE 1 + floor(random() * 12)::int END $$;
CREATE FUNCTION prop.rnd_v1() RETURNS integer LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.25 THEN NULL ELSE floor(random() * 4)::int END $$;
CREATE FUNCTION prop.rnd_v2() RETURNS text LANGUAGE sql AS
  $$ SELECT CASE WHEN random() < 0.25 THEN NULL ELSE (ARRAY['a', 'b', 'c'])[1 + floor(random() * 3)::int] END $$;

-- The driver -----------------------------------------------------------------------
\set ON_ERROR_STOP 1
DO $driver$
DECLARE
    nseeds integer := current_setting('prop.nseeds')::int;
    steps integer := current_setting('prop.steps')::int;
    pipes text[] := ARRAY['p_mh', 'p_ms', 'p_ak', 'p_an', 'p_fh', 'p_fs'];
    inc_counts boolean := current_setting('prop.inc_counts')::boolean;
    seed integer;
    step integer;
    i integer;
    n integer;
    p text;
    r double precision;
    b integer;
    expected text;
    rid_next integer;
    pick integer;
    run_id bigint;
    one_txn boolean;
    again boolean;
BEGIN
    FOR seed IN 1..nseeds LOOP
        PERFORM setseed(seed / (nseeds + 1.0));
        PERFORM prop.setup_seed();
        rid_next := 1;
        COMMIT;
        FOR step IN 1..steps + 1 LOOP
            IF step <= steps THEN
                -- staging: a burst of rows, one transaction per row or per burst
                n := 1 + floor(random() * 8)::int;
                one_txn := random() < 0.5;
                FOR i IN 1..n LOOP
                    INSERT INTO prop.stg (k, v1, v2, del)
                    VALUES (prop.rnd_key(), prop.rnd_v1(), prop.rnd_v2(), random() < 0.15);
                    IF NOT one_txn THEN COMMIT; END IF;
                END LOOP;
                -- snapshot: inserts, updates, deletes
                FOR i IN 1..floor(random() * 4)::int LOOP
                    INSERT INTO prop.snap VALUES (prop.rnd_key(), prop.rnd_v1(), prop.rnd_v2(),
                                                  random() < 0.1, rid_next);
                    rid_next := rid_next + 1;
                END LOOP;
                IF random() < 0.5 AND EXISTS (SELECT 1 FROM prop.snap) THEN
                    pick := floor(random() * (SELECT count(*) FROM prop.snap))::int;
                    UPDATE prop.snap SET v1 = prop.rnd_v1(), v2 = prop.rnd_v2(), del = random() < 0.1,
                                         k = CASE WHEN random() < 0.2 THEN prop.rnd_key() ELSE k END
                     WHERE rid = (SELECT s.rid FROM prop.snap s ORDER BY s.rid OFFSET pick LIMIT 1);
                END IF;
                IF random() < 0.3 AND EXISTS (SELECT 1 FROM prop.snap) THEN
                    pick := floor(random() * (SELECT count(*) FROM prop.snap))::int;
                    DELETE FROM prop.snap
                     WHERE rid = (SELECT s.rid FROM prop.snap s ORDER BY s.rid OFFSET pick LIMIT 1);
                END IF;
                COMMIT;
                -- sometimes reset one pipeline
                IF random() < 0.06 THEN
                    p := pipes[1 + floor(random() * 6)::int];
                    PERFORM pipeline.reset(p);
                    UPDATE prop.model_wm SET wm = NULL WHERE pipe = p;
                    INSERT INTO prop.resetlog VALUES (seed, p);
                    COMMIT;
                END IF;
                CONTINUE WHEN random() >= 0.5;   -- no run at this step
            END IF;
            -- a run point (the last one runs every pipeline plainly)
            FOREACH p IN ARRAY pipes LOOP
                again := false;
                LOOP
                    r := CASE WHEN step > steps OR again THEN 0.5 ELSE random() END;
                    EXIT WHEN r < 0.2;                  -- this pipeline does not run now
                    IF r < 0.7 OR p IN ('p_fh', 'p_fs') THEN
                        expected := prop.model_run(p, NULL);
                        run_id := pipeline.run(p);
                        COMMIT;
                        PERFORM prop.check_run(seed, p, run_id, expected, false);
                        INSERT INTO prop.runlog VALUES (seed, p, run_id, false, NULL);
                    ELSE
                        b := 1 + floor(random() * 6)::int;
                        expected := prop.model_run(p, b);
                        CALL pipeline.run_batched(p, b);
                        run_id := (SELECT max(h.run_id) FROM pipeline.runs h WHERE h.pipeline_name = p);
                        PERFORM prop.check_run(seed, p, run_id, expected, true);
                        INSERT INTO prop.runlog VALUES (seed, p, run_id, true, b);
                    END IF;
                    COMMIT;
                    EXIT WHEN again OR step > steps OR random() >= 0.2;
                    again := true;                      -- run it again: nothing new
                END LOOP;
            END LOOP;
        END LOOP;
        -- references that do not depend on run timing (with inc_counts off,
        -- the target keeps the incremental value of the last real change)
        INSERT INTO prop.checks (seed, pipe, what, ok, detail)
        SELECT seed, 'p_mh', 'reference', count(*) = 0, string_agg(d::text, ' ')
          FROM ((SELECT k, CASE WHEN inc_counts THEN inc END, v1, v2, del FROM prop.t_mh
                 EXCEPT ALL
                 SELECT k, CASE WHEN inc_counts THEN inc END, v1, v2, del
                   FROM (SELECT DISTINCT ON (k) k, inc, v1, v2, del FROM prop.stg WHERE k IS NOT NULL
                          ORDER BY k, inc DESC) x WHERE NOT del)
                UNION ALL
                (SELECT k, CASE WHEN inc_counts THEN inc END, v1, v2, del
                   FROM (SELECT DISTINCT ON (k) k, inc, v1, v2, del FROM prop.stg WHERE k IS NOT NULL
                          ORDER BY k, inc DESC) x WHERE NOT del
                 EXCEPT ALL
                 SELECT k, CASE WHEN inc_counts THEN inc END, v1, v2, del FROM prop.t_mh)) d;
        INSERT INTO prop.checks (seed, pipe, what, ok, detail)
        SELECT seed, 'p_fh', 'reference', count(*) = 0, string_agg(d::text, ' ')
          FROM ((SELECT k, v1, v2, del, rid FROM prop.t_fh
                 EXCEPT ALL
                 SELECT * FROM (SELECT DISTINCT ON (k) k, v1, v2, del, rid FROM prop.snap WHERE k IS NOT NULL
                                 ORDER BY k, del DESC, v1 DESC NULLS LAST, v2 DESC NULLS LAST, rid DESC) x
                  WHERE NOT del)
                UNION ALL
                (SELECT * FROM (SELECT DISTINCT ON (k) k, v1, v2, del, rid FROM prop.snap WHERE k IS NOT NULL
                                 ORDER BY k, del DESC, v1 DESC NULLS LAST, v2 DESC NULLS LAST, rid DESC) x
                  WHERE NOT del
                 EXCEPT ALL
                 SELECT k, v1, v2, del, rid FROM prop.t_fh)) d;
        COMMIT;
    END LOOP;
END $driver$;

-- The TAP lines ------------------------------------------------------------------------
CREATE FUNCTION prop.emit(nseeds integer) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    s integer;
    p record;
    w text;
    n bigint;
    bad bigint;
    first_bad text;
BEGIN
    FOR s IN 1..nseeds LOOP
        FOR p IN SELECT pipe, src FROM prop.pipes ORDER BY ord LOOP
            FOREACH w IN ARRAY CASE WHEN p.src = 'stg' THEN ARRAY['contents', 'counts', 'watermark']
                                    ELSE ARRAY['contents', 'counts'] END LOOP
                SELECT count(*), count(*) FILTER (WHERE NOT ok),
                       (SELECT detail FROM prop.checks c2 WHERE c2.seed = s AND c2.pipe = p.pipe
                           AND c2.what = w AND NOT c2.ok ORDER BY id LIMIT 1)
                  INTO n, bad, first_bad
                  FROM prop.checks c WHERE c.seed = s AND c.pipe = p.pipe AND c.what = w;
                RETURN NEXT ok(n > 0 AND bad = 0,
                               format('seed %s, %s: %s match the model after each of %s runs', s, p.pipe, w, n));
                IF bad > 0 THEN
                    RETURN NEXT diag(format('%s of %s checks failed; first: %s', bad, n, first_bad));
                END IF;
            END LOOP;
        END LOOP;
        FOREACH w IN ARRAY ARRAY['p_mh', 'p_fh'] LOOP
            SELECT count(*), count(*) FILTER (WHERE NOT ok), min(detail) INTO n, bad, first_bad
              FROM prop.checks c WHERE c.seed = s AND c.pipe = w AND c.what = 'reference';
            RETURN NEXT ok(n = 1 AND bad = 0,
                           format('seed %s, %s: final target equals DISTINCT ON over the source minus deletes', s, w));
            IF bad > 0 THEN
                RETURN NEXT diag('rows that differ: ' || first_bad);
            END IF;
        END LOOP;
    END LOOP;
END $$;

SELECT * FROM prop.emit(:nseeds);

-- the generated cases really exercise what they claim to ---------------------------------
SELECT cmp_ok((SELECT count(*) FROM prop.runlog), '>=', :nseeds * 40::bigint, 'many runs');
SELECT cmp_ok((SELECT count(*) FROM prop.runlog l JOIN pipeline.runs r USING (run_id)
                WHERE l.batched AND r.batches >= 2), '>=', 50::bigint, 'many batched runs of several batches');
SELECT cmp_ok((SELECT count(*) FROM prop.runlog l LEFT JOIN pipeline.runs r USING (run_id)
                WHERE r.run_id IS NULL OR r.rows_read = 0), '>=', 20::bigint, 'runs with nothing new');
SELECT cmp_ok((SELECT sum(rows_deleted) FROM prop.runlog l JOIN pipeline.runs r USING (run_id)
                WHERE l.pipe IN ('p_mh', 'p_ms', 'p_fh', 'p_fs')), '>=', 100::numeric, 'deletes applied');
SELECT cmp_ok((SELECT sum(rows_updated) FROM prop.runlog l JOIN pipeline.runs r USING (run_id)),
              '>=', 100::numeric, 'updates applied');
SELECT cmp_ok((SELECT sum(rows_unchanged) FROM prop.runlog l JOIN pipeline.runs r USING (run_id)),
              '>=', 100::numeric, 'unchanged rows seen');
SELECT cmp_ok((SELECT sum(rows_rejected) FROM prop.runlog l JOIN pipeline.runs r USING (run_id)),
              '>=', 20::numeric, 'NULL keys rejected');
SELECT cmp_ok((SELECT sum(rows_read - rows_inserted - rows_updated - rows_deleted - rows_unchanged - rows_rejected)
                 FROM prop.runlog l JOIN pipeline.runs r USING (run_id) WHERE l.pipe IN ('p_mh', 'p_ms', 'p_ak')),
              '>=', 100::numeric, 'duplicate keys within one window');
SELECT cmp_ok((SELECT count(*) FROM prop.resetlog), '>=', 5::bigint, 'pipelines reset between runs');

SELECT * FROM finish();
