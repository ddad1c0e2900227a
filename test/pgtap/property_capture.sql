\ir common/preamble.sql
-- test/pgtap/property_capture.sql
--
-- Property test of change capture (docs/capture.md). For each of 10 fixed
-- seeds, a captured table prop.s<seed> (id int primary key, v int, t text)
-- gets 30 steps of random OLTP traffic, each step one transaction of 1 to 6
-- statements: inserts of new keys, updates of values, updates that change
-- the key (to a new key or to one deleted before), multi-row key changes,
-- deletes, inserts again of deleted keys, now and then a TRUNCATE, and now
-- and then a group of changes rolled back. Two merge pipelines read the
-- capture: a<seed> from the start (capture => true on the table, which
-- captures it), b<seed> registered at a random step (possibly after
-- changes were purged, when it starts from a fresh snapshot), with a
-- random capture_retention of none or an hour. Between steps, at random,
-- each pipeline runs, and the capture is purged.
--
--   - after every run, the pipeline's target equals the table itself
--     (plain SQL EXCEPT ALL, both ways, on id, v, t);
--   - a purge never deletes a change above the least watermark of the
--     consumers (every change not yet loaded by one of them is still
--     there after it), purges nothing while a consumer has not run, and
--     nothing younger than a consumer's retention;
--   - after a last run of both, both targets equal the table, and a purge
--     (the retention removed) leaves the capture table empty, having
--     purged something in all.
--
-- The driver runs in one DO block that commits after each step, records
-- every check in prop.checks, and the TAP lines are emitted at the end.

\set nseeds 10
\set steps 30
SELECT set_config('prop.nseeds', :'nseeds', false) AS nseeds_set,
       set_config('prop.steps', :'steps', false) AS steps_set \gset
SELECT plan(:nseeds * 5);

CREATE SCHEMA prop;
CREATE TABLE prop.checks (
    id     bigserial PRIMARY KEY,
    seed   integer NOT NULL,
    what   text NOT NULL,
    ok     boolean NOT NULL,
    detail text
);

-- same(seed, pipeline, target, table): the check that a target equals the table
CREATE FUNCTION prop.same(seed int, what text, tgt text, src text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
    extra bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM (SELECT id, v, t FROM prop.%I EXCEPT ALL SELECT id, v, t FROM prop.%I) d',
                   src, tgt) INTO missing;
    EXECUTE format('SELECT count(*) FROM (SELECT id, v, t FROM prop.%I EXCEPT ALL SELECT id, v, t FROM prop.%I) d',
                   tgt, src) INTO extra;
    INSERT INTO prop.checks (seed, what, ok, detail)
    VALUES (seed, what, missing = 0 AND extra = 0,
            CASE WHEN missing + extra > 0 THEN format('%s rows missing, %s extra', missing, extra) END);
END $$;

-- run(seed, pipeline, target, table): one run, which must succeed, then the check
CREATE FUNCTION prop.run(seed int, p text, tgt text, src text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rid bigint := pipeline.run(p);
    -- a run that found nothing new has no record, only its pipeline's status
    st text := coalesce((SELECT status FROM pipeline.runs WHERE run_id = rid),
                        (SELECT last_run_status FROM pipeline.status WHERE name = p AND last_run_id = rid));
BEGIN
    IF st IS DISTINCT FROM 'succeeded' THEN
        INSERT INTO prop.checks (seed, what, ok, detail)
        VALUES (seed, 'equal after runs of ' || left(p, 1), false, format('run %s of %s: %s', rid, p, st));
    END IF;
    PERFORM prop.same(seed, 'equal after runs of ' || left(p, 1), tgt, src);
END $$;

-- purge(seed, table): a purge, and what it may and may not have deleted
CREATE FUNCTION prop.purge(seed int, src text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cap text := src || '__changes';
    consumers int;
    unloaded int;
    least_wm bigint;
    newest_retention interval;
    before_above bigint[];
    after_above bigint[];
    n bigint;
    total_before bigint;
    total_after bigint;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE p.watermark IS NULL), min(p.watermark::bigint)
      INTO consumers, unloaded, least_wm
      FROM pipeline.pipelines p WHERE p.source = format('prop.%s__changes_feed', src);
    EXECUTE format('SELECT count(*) FROM prop.%I', cap) INTO total_before;
    EXECUTE format('SELECT array_agg(_change_id ORDER BY _change_id) FROM prop.%I WHERE _change_id > $1', cap)
      INTO before_above USING coalesce(least_wm, 0);
    n := pipeline.purge_capture(format('prop.%I', src)::regclass);
    EXECUTE format('SELECT count(*) FROM prop.%I', cap) INTO total_after;
    EXECUTE format('SELECT array_agg(_change_id ORDER BY _change_id) FROM prop.%I WHERE _change_id > $1', cap)
      INTO after_above USING coalesce(least_wm, 0);
    INSERT INTO prop.checks (seed, what, ok, detail)
    VALUES (seed, 'purge keeps every unloaded change',
            before_above IS NOT DISTINCT FROM after_above
            AND (unloaded = 0 OR n = 0)
            AND total_before - total_after = n,
            format('purged %s; consumers %s (%s not run), least watermark %s; above it before %s, after %s',
                   n, consumers, unloaded, least_wm, cardinality(before_above), cardinality(after_above)));
    -- a consumer with a retention of an hour keeps everything younger
    SELECT max(p.capture_retention) INTO newest_retention
      FROM pipeline.pipeline p JOIN pipeline.pipelines v ON v.id = p.pipeline_id
     WHERE v.source = format('prop.%s__changes_feed', src);
    IF newest_retention IS NOT NULL THEN
        -- every change here is younger than the hour
        INSERT INTO prop.checks (seed, what, ok, detail)
        VALUES (seed, 'purge keeps every unloaded change', n = 0,
                format('purged %s within a retention of %s', n, newest_retention));
    END IF;
END $$;

SET client_min_messages = error;
DO $$
DECLARE
    nseeds int := current_setting('prop.nseeds')::int;
    steps int := current_setting('prop.steps')::int;
    src text; pa text; pb text; ta text; tb text;
    b_at int; b_retention interval;
    next_key int;
    nstmt int; r float8; k int; k2 int;
BEGIN
    FOR seed IN 1 .. nseeds LOOP
        PERFORM setseed(seed / 100.0);
        src := 's' || seed; pa := 'a' || seed; pb := 'b' || seed;
        ta := 'ta' || seed; tb := 'tb' || seed;
        b_at := 2 + floor(random() * 20)::int;
        b_retention := CASE WHEN random() < 0.3 THEN interval '1 hour' END;
        EXECUTE format('CREATE TABLE prop.%I (id int PRIMARY KEY, v int, t text)', src);
        next_key := 1 + floor(random() * 30)::int;
        EXECUTE format('INSERT INTO prop.%I SELECT g, g %% 7, md5(g::text) FROM generate_series(1, $1) g', src)
          USING next_key - 1;
        PERFORM pipeline.create_pipeline(pa, format('prop.%I', src)::regclass, 'prop.' || ta, capture => true);
        COMMIT;
        FOR step IN 1 .. steps LOOP
            IF step = b_at THEN
                PERFORM pipeline.create_pipeline(pb, format('prop.%I', src)::regclass, 'prop.' || tb,
                                                 capture => true, capture_retention => b_retention);
            END IF;
            nstmt := 1 + floor(random() * 6)::int;
            FOR i IN 1 .. nstmt LOOP
                r := random();
                EXECUTE format('SELECT id FROM prop.%I ORDER BY random() LIMIT 1', src) INTO k;
                IF r < 0.25 OR k IS NULL THEN
                    -- a new key, or one deleted before
                    k2 := CASE WHEN random() < 0.3 THEN 1 + floor(random() * next_key)::int ELSE next_key END;
                    next_key := next_key + 1;
                    EXECUTE format('INSERT INTO prop.%I VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', src)
                      USING k2, floor(random() * 5)::int, md5(random()::text);
                ELSIF r < 0.5 THEN
                    EXECUTE format('UPDATE prop.%I SET v = v + 1, t = CASE WHEN random() < 0.2 THEN NULL ELSE t END WHERE id = $1', src)
                      USING k;
                ELSIF r < 0.6 THEN
                    -- an update of the key: to a new key, or to a free old one
                    k2 := CASE WHEN random() < 0.5 THEN 1 + floor(random() * next_key)::int ELSE next_key END;
                    next_key := next_key + 1;
                    BEGIN
                        EXECUTE format('UPDATE prop.%I SET id = $2, v = v + 10 WHERE id = $1', src) USING k, k2;
                    EXCEPTION WHEN unique_violation THEN NULL;
                    END;
                ELSIF r < 0.65 THEN
                    -- several keys move at once, to keys above every key so far
                    EXECUTE format('UPDATE prop.%I SET id = id + $1 WHERE id %% 5 = $2', src)
                      USING next_key + 1000, floor(random() * 5)::int;
                    EXECUTE format('SELECT coalesce(max(id), 0) + 1 FROM prop.%I', src) INTO k2;
                    next_key := greatest(next_key, k2);
                ELSIF r < 0.85 THEN
                    EXECUTE format('DELETE FROM prop.%I WHERE id = $1', src) USING k;
                ELSIF r < 0.88 THEN
                    EXECUTE format('TRUNCATE prop.%I', src);
                ELSE
                    -- changes that roll back leave nothing behind
                    BEGIN
                        EXECUTE format('DELETE FROM prop.%I WHERE id = $1', src) USING k;
                        EXECUTE format('INSERT INTO prop.%I VALUES ($1, -1, $2)', src) USING next_key, 'rolled back';
                        RAISE EXCEPTION 'roll back';
                    EXCEPTION WHEN raise_exception THEN NULL;
                    END;
                END IF;
            END LOOP;
            COMMIT;
            IF random() < 0.5 THEN
                PERFORM prop.run(seed, pa, ta, src);
            END IF;
            IF step >= b_at AND random() < 0.4 THEN
                PERFORM prop.run(seed, pb, tb, src);
            END IF;
            COMMIT;
            IF random() < 0.4 THEN
                PERFORM prop.purge(seed, src);
            END IF;
            COMMIT;
        END LOOP;
        IF b_at > steps THEN
            PERFORM pipeline.create_pipeline(pb, format('prop.%I', src)::regclass, 'prop.' || tb, capture => true);
        END IF;
        PERFORM prop.run(seed, pa, ta, src);
        PERFORM prop.run(seed, pb, tb, src);
        PERFORM prop.same(seed, 'equal at the end', ta, src);
        PERFORM prop.same(seed, 'equal at the end', tb, src);
        -- with both up to date and no retention, a purge empties the capture
        PERFORM pipeline.alter_pipeline(pb, capture_retention => '0');
        PERFORM prop.purge(seed, src);
        EXECUTE format('SELECT count(*) FROM prop.%I', src || '__changes') INTO k;
        INSERT INTO prop.checks (seed, what, ok, detail)
        SELECT seed, 'purged everything loaded at the end', k = 0 AND c.purged_changes > 0,
               format('%s changes left, %s purged in %s batches', k, c.purged_changes, c.purges)
          FROM pipeline.captures c WHERE c.relation = format('prop.%I', src)::regclass;
        COMMIT;
    END LOOP;
END $$;
RESET client_min_messages;

-- The TAP lines: per seed, each property held every time it was checked.
SELECT ok(coalesce(bool_and(c.ok), false),
          format('seed %s: %s (%s checks)%s', s.seed, w.what, count(c.id),
                 coalesce(': ' || string_agg(c.detail, '; ') FILTER (WHERE NOT c.ok), '')))
  FROM generate_series(1, :nseeds) AS s(seed)
 CROSS JOIN (VALUES ('equal after runs of a'), ('equal after runs of b'), ('purge keeps every unloaded change'),
                    ('purged everything loaded at the end'), ('equal at the end')) AS w(what)
  LEFT JOIN prop.checks c ON c.seed = s.seed AND c.what = w.what
 GROUP BY s.seed, w.what
 ORDER BY s.seed, w.what;

SELECT * FROM finish();
