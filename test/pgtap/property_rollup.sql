\ir common/preamble.sql
-- test/pgtap/property_rollup.sql
--
-- Property test of mode rollup. For each of several fixed seeds, a detail
-- table prop.d (id, t, g, c, v) is changed in random batches: inserts of
-- rows on time and of late rows (times hours behind the newest), rows
-- without a time, updates that move rows between buckets and groups (NULL
-- groups included) or change their measures, deletes. After every batch
-- a rollup pipeline (buckets of an hour by t, grouped by g; count(*),
-- sum(v), count(DISTINCT c), max(v); allowed_lateness 3 hours) runs, and:
--
--   - the target equals a full recompute in plain SQL (EXCEPT ALL both
--     ways) of the source in which the run's open late changes are not
--     applied: the rows that left closed buckets put back, those that
--     arrived in them taken out;
--   - the late changes are exactly those a plain-SQL reference expects:
--     from the table before and after the batch, each row that arrived in
--     (inserted, updated to) or left (deleted, updated from) a bucket that
--     ended by the high-water time minus 3 hours; the run counts them
--     (rows_quarantined) and quarantines each, with its row;
--   - rows_read is the changed rows' sides that have a time; inserted,
--     deleted, updated and unchanged cells are exactly the target's
--     changes, the unchanged ones among the dirty cells;
--   - the watermark is the latest time that arrived on time, never lower.
--
-- Then a reset and a run: the target equals the plain recompute of the
-- source itself, and no late row is left open. Each batch touches a row
-- at most once and changes something in each row it updates, so that the
-- table before and after says what the triggers saw.
--
-- The driver records every check in prop.result; the TAP lines come last.

\set nseeds 6
\set steps 10
SELECT set_config('prop.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('prop.steps', :'steps', false) AS steps_set \gset
SELECT plan(:nseeds * 10);

CREATE SCHEMA prop;
CREATE TABLE prop.d (id integer PRIMARY KEY, t timestamptz, g text, c integer, v numeric);
CREATE INDEX ON prop.d (t);
CREATE TABLE prop.before (LIKE prop.d);
CREATE TABLE prop.target_before (bucket timestamptz, g text, n bigint, s numeric, dc bigint, mx numeric);
CREATE TABLE prop.dirty_before (bucket timestamptz, g text);
CREATE TABLE prop.result (seed integer, what text, ok boolean, detail text);

CREATE FUNCTION prop.record(seed integer, what text, bad bigint, detail text DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO prop.result VALUES (seed, what, bad = 0, CASE WHEN bad <> 0 THEN bad || ' bad: ' || coalesce(detail, '') END) $$;
CREATE FUNCTION prop.last_run(p text) RETURNS pipeline.runs LANGUAGE sql AS $$
  SELECT * FROM pipeline.runs WHERE pipeline_name = p ORDER BY run_id DESC LIMIT 1 $$;
CREATE FUNCTION prop.bucket(t timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT date_bin('1 hour', t, timestamptz '2000-01-01 00:00+00') $$;
CREATE FUNCTION prop.rnd_g() RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN random() < 0.1 THEN NULL ELSE (ARRAY['a', 'b', 'c'])[1 + floor(random() * 3)::int] END $$;

-- the rows whose change the run should not apply: an open late change of
-- pipeline p, as it arrived ('arrived') or left ('left')
CREATE FUNCTION prop.late(p text, side text) RETURNS TABLE (t timestamptz, g text, c integer, v numeric)
LANGUAGE sql AS $$
  SELECT ("row"->>'t')::timestamptz, "row"->>'g', ("row"->>'c')::int, ("row"->>'v')::numeric
    FROM pipeline.quarantine
   WHERE pipeline = p AND status = 'open' AND failed_checks = '{late}' AND reason LIKE 'late: ' || side || '%' $$;
-- the full recompute of the source, with the open late changes of p not applied
CREATE FUNCTION prop.reference(p text) RETURNS TABLE (bucket timestamptz, g text, n bigint, s numeric, dc bigint, mx numeric)
LANGUAGE sql AS $$
  SELECT prop.bucket(r.t), r.g, count(*), sum(r.v), count(DISTINCT r.c), max(r.v)
    FROM (SELECT d.t, d.g, d.c, d.v FROM prop.d d WHERE d.t IS NOT NULL
          UNION ALL SELECT * FROM prop.late(p, 'left')
          EXCEPT ALL SELECT * FROM prop.late(p, 'arrived')) r
   GROUP BY 1, 2 $$;
-- the sides the batch changed: (id, side, t, g) of each row as it left and as it arrived
CREATE FUNCTION prop.sides() RETURNS TABLE (id integer, side text, t timestamptz, g text)
LANGUAGE sql AS $$
  SELECT b.id, 'left', b.t, b.g FROM prop.before b LEFT JOIN prop.d d USING (id)
   WHERE d.id IS NULL OR (d.*) IS DISTINCT FROM (b.*)
  UNION ALL
  SELECT d.id, 'arrived', d.t, d.g FROM prop.d d LEFT JOIN prop.before b USING (id)
   WHERE b.id IS NULL OR (d.*) IS DISTINCT FROM (b.*) $$;

SET client_min_messages = error;
DO $$
DECLARE
    nseeds int := current_setting('prop.nseeds')::int;
    steps int := current_setting('prop.steps')::int;
    p text; dst text;
    r pipeline.runs;
    now_t timestamptz;
    horizon timestamptz;
    wm timestamptz;
    expect_wm timestamptz;
    next_id int;
    bad bigint;
    late_seen bigint; moved bigint; emptied bigint;
    f_ref bigint; f_late bigint; f_quar bigint; f_read bigint; f_cells bigint; f_wm bigint;
    exp_ins bigint; exp_upd bigint; exp_del bigint; exp_unch bigint;
BEGIN
    FOR sd IN 1 .. nseeds LOOP
        PERFORM setseed(sd / 100.0);
        p := 'r_' || sd; dst := 'prop.r_dst_' || sd;
        TRUNCATE prop.d;
        INSERT INTO prop.d SELECT i, timestamptz '2024-01-01 00:00+00' + random() * interval '6 hours',
                                  prop.rnd_g(), floor(random() * 8)::int, floor(random() * 100)
                             FROM generate_series(1, 40) i;
        next_id := 41;
        PERFORM pipeline.create_pipeline(p, 'prop.d', dst, mode => 'rollup', allowed_lateness => '3 hours',
            rollup => '{"time_column": "t", "bucket": "1 hour", "group_by": ["g"],
                        "measures": {"n": "count(*)", "s": "sum(v)", "dc": "count(DISTINCT c)", "mx": "max(v)"}}');
        PERFORM pipeline.run(p);
        f_ref := 0; f_late := 0; f_quar := 0; f_read := 0; f_cells := 0; f_wm := 0;
        late_seen := 0; moved := 0; emptied := 0;
        FOR step IN 1 .. steps LOOP
            now_t := timestamptz '2024-01-01 06:00+00' + step * interval '2 hours';
            wm := (prop.last_run(p)).watermark_to::timestamptz;
            horizon := wm - interval '3 hours';
            TRUNCATE prop.before, prop.target_before, prop.dirty_before;
            INSERT INTO prop.before SELECT * FROM prop.d;
            EXECUTE format('INSERT INTO prop.target_before SELECT bucket, g, n, s, dc, mx FROM %s', dst);
            -- the batch: each row touched once at most
            CREATE TEMP TABLE pick ON COMMIT DROP AS
                SELECT id, random() AS x FROM prop.d ORDER BY random() LIMIT 1 + floor(random() * 14)::int;
            UPDATE prop.d d SET t = CASE WHEN k.x < 0.4 THEN d.t + (random() * 8 - 5) * interval '1 hour' ELSE d.t END,
                                g = CASE WHEN k.x < 0.4 OR k.x >= 0.8 THEN prop.rnd_g() ELSE d.g END,
                                v = coalesce(d.v, 0) + 1 + floor(random() * 10),
                                c = CASE WHEN random() < 0.5 THEN floor(random() * 8)::int ELSE d.c END
              FROM pick k WHERE k.id = d.id AND k.x < 0.9;
            DELETE FROM prop.d d USING pick k WHERE k.id = d.id AND k.x >= 0.9;
            DROP TABLE pick;
            INSERT INTO prop.d
            SELECT next_id + i,
                   CASE WHEN random() < 0.05 THEN NULL
                        WHEN random() < 0.25 THEN now_t - random() * interval '12 hours'
                        ELSE now_t + random() * interval '2 hours' END,
                   prop.rnd_g(), floor(random() * 8)::int, floor(random() * 100)
              FROM generate_series(0, 4 + floor(random() * 20)::int) i;
            next_id := next_id + 30;
            EXECUTE format('INSERT INTO prop.dirty_before SELECT DISTINCT bucket, %I FROM %s WHERE __change = %L',
                           'g', dst || '__dirty', 'c');
            PERFORM pipeline.run(p);
            r := prop.last_run(p);
            -- the target is the recompute, without the open late changes
            EXECUTE format($q$
                SELECT count(*) FROM (
                  (SELECT * FROM prop.reference(%1$L) EXCEPT ALL SELECT bucket, g, n, s, dc, mx FROM %2$s)
                  UNION ALL
                  (SELECT bucket, g, n, s, dc, mx FROM %2$s EXCEPT ALL SELECT * FROM prop.reference(%1$L))) x$q$,
                p, dst) INTO bad;
            f_ref := f_ref + bad;
            -- the late changes are those the reference expects, quarantined each with its row
            SELECT count(*) INTO bad FROM (
                (SELECT s.id, s.side FROM prop.sides() s
                  WHERE s.t IS NOT NULL AND prop.bucket(s.t) + interval '1 hour' <= horizon
                 EXCEPT ALL
                 SELECT ("row"->>'id')::int, CASE WHEN reason LIKE 'late: arrived%' THEN 'arrived' ELSE 'left' END
                   FROM pipeline.quarantine WHERE run_id = r.run_id)
                UNION ALL
                (SELECT ("row"->>'id')::int, CASE WHEN reason LIKE 'late: arrived%' THEN 'arrived' ELSE 'left' END
                   FROM pipeline.quarantine WHERE run_id = r.run_id
                 EXCEPT ALL
                 SELECT s.id, s.side FROM prop.sides() s
                  WHERE s.t IS NOT NULL AND prop.bucket(s.t) + interval '1 hour' <= horizon)) x;
            f_late := f_late + bad;
            SELECT count(*) INTO bad FROM prop.sides() s
             WHERE s.t IS NOT NULL AND prop.bucket(s.t) + interval '1 hour' <= horizon;
            late_seen := late_seen + bad;
            f_quar := f_quar + (r.rows_quarantined <> bad)::int;
            -- rows read: the changed sides that have a time
            SELECT count(*) INTO bad FROM prop.sides() s WHERE s.t IS NOT NULL;
            f_read := f_read + (r.rows_read <> bad)::int;
            -- the cells: inserted, deleted, updated, unchanged among the dirty ones
            EXECUTE format($q$
                SELECT (SELECT count(*) FROM %1$s a WHERE NOT EXISTS (SELECT FROM prop.target_before b
                          WHERE b.bucket = a.bucket AND b.g IS NOT DISTINCT FROM a.g)),
                       (SELECT count(*) FROM prop.target_before b WHERE NOT EXISTS (SELECT FROM %1$s a
                          WHERE b.bucket = a.bucket AND b.g IS NOT DISTINCT FROM a.g)),
                       (SELECT count(*) FROM %1$s a JOIN prop.target_before b
                          ON b.bucket = a.bucket AND b.g IS NOT DISTINCT FROM a.g
                         WHERE (a.n, a.s, a.dc, a.mx) IS DISTINCT FROM (b.n, b.s, b.dc, b.mx)),
                       (SELECT count(*) FROM %1$s a JOIN prop.target_before b
                          ON b.bucket = a.bucket AND b.g IS NOT DISTINCT FROM a.g
                         WHERE (a.n, a.s, a.dc, a.mx) IS NOT DISTINCT FROM (b.n, b.s, b.dc, b.mx)
                           AND EXISTS (SELECT FROM prop.dirty_before c
                                        WHERE c.bucket = a.bucket AND c.g IS NOT DISTINCT FROM a.g))$q$, dst)
              INTO exp_ins, exp_del, exp_upd, exp_unch;
            f_cells := f_cells + (r.rows_inserted <> exp_ins OR r.rows_deleted <> exp_del
                                  OR r.rows_updated <> exp_upd OR r.rows_unchanged <> exp_unch)::int;
            emptied := emptied + exp_del;
            SELECT count(*) INTO bad FROM prop.sides() s
             WHERE s.side = 'arrived' AND s.id IN (SELECT id FROM prop.before);
            moved := moved + bad;
            -- the watermark: the latest time that arrived on time, never lower
            SELECT greatest(wm, max(s.t)) INTO expect_wm FROM prop.sides() s
             WHERE s.side = 'arrived' AND s.t IS NOT NULL AND prop.bucket(s.t) + interval '1 hour' > horizon;
            f_wm := f_wm + (r.watermark_to::timestamptz IS DISTINCT FROM expect_wm)::int;
        END LOOP;
        PERFORM prop.record(sd, 'after every run the target equals the recompute without the open late changes', f_ref);
        PERFORM prop.record(sd, 'the late changes quarantined are exactly those in closed buckets', f_late);
        PERFORM prop.record(sd, 'every run counts its late changes', f_quar);
        PERFORM prop.record(sd, 'every run reads the changed rows'' sides that have a time', f_read);
        PERFORM prop.record(sd, 'every run counts exactly the cells inserted, deleted, updated and unchanged', f_cells);
        PERFORM prop.record(sd, 'the watermark is the latest time folded in', f_wm);
        PERFORM prop.record(sd, 'late changes happened (the test can fail)', (late_seen = 0)::int);
        PERFORM prop.record(sd, 'rows moved and cells emptied (the test can fail)', (moved = 0 OR emptied = 0)::int);
        -- reset: every cell recomputed, every late change applied
        PERFORM pipeline.reset(p);
        PERFORM pipeline.run(p);
        EXECUTE format($q$
            SELECT count(*) FROM (
              (SELECT prop.bucket(t), g, count(*), sum(v), count(DISTINCT c), max(v) FROM prop.d
                WHERE t IS NOT NULL GROUP BY 1, 2
               EXCEPT ALL SELECT bucket, g, n, s, dc, mx FROM %1$s)
              UNION ALL
              (SELECT bucket, g, n, s, dc, mx FROM %1$s
               EXCEPT ALL SELECT prop.bucket(t), g, count(*), sum(v), count(DISTINCT c), max(v) FROM prop.d
                WHERE t IS NOT NULL GROUP BY 1, 2)) x$q$, dst) INTO bad;
        PERFORM prop.record(sd, 'after reset and a run the target equals the plain recompute', bad);
        SELECT count(*) INTO bad FROM pipeline.quarantine WHERE pipeline = p AND status = 'open';
        PERFORM prop.record(sd, 'after reset and a run no late change is open', bad);
    END LOOP;
END $$;

SELECT ok(r.ok, format('seed %s: %s%s', r.seed, r.what, coalesce(' (' || r.detail || ')', '')))
  FROM prop.result r ORDER BY r.seed, r.what;

SELECT * FROM finish();
