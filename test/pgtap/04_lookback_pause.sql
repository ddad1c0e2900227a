\ir common/preamble.sql
-- test/pgtap/04_lookback_pause.sql
--
-- A timestamptz incremental column with lookback: late rows inside the
-- lookback are re-read and applied idempotently (re-read rows unchanged, not
-- rewritten); rows older than watermark - lookback are not read (the lower
-- bound is exclusive); reset() to a given timestamp stores it in UTC; reset()
-- to NULL reloads everything; pause()/resume().
SET TimeZone = 'UTC';

SELECT plan(32);

CREATE FUNCTION watermark_of(text) RETURNS text LANGUAGE sql AS $$
  SELECT watermark FROM pipeline.pipelines WHERE name = $1 $$;

CREATE TABLE readings_raw (sensor integer, ts timestamptz NOT NULL, value numeric);
SELECT ok(pipeline.create_pipeline('readings', 'readings_raw', 'readings',
          unique_key => '{sensor}', incremental_column => 'ts',
          lookback => '1 hour') > 0,
          'a pipeline with a one-hour lookback');
SELECT is((SELECT lookback FROM pipeline.pipelines WHERE name = 'readings'), '1 hour'::interval,
          'pipelines shows the lookback');

INSERT INTO readings_raw VALUES (1, '2024-01-01 10:00+00', 1), (2, '2024-01-01 10:30+00', 2);
SELECT pipeline.run('readings') AS r1 \gset
SELECT is(run_counts(:r1), 'succeeded read=2 ins=2 upd=0 del=0 unch=0 rej=0', 'run 1 counts');
SELECT is(watermark_of('readings')::timestamptz, '2024-01-01 10:30+00'::timestamptz,
          'run 1 watermark is the latest timestamp');
CREATE TABLE snap1 AS SELECT sensor, xmin::text AS x FROM readings;

-- a late row inside the lookback
INSERT INTO readings_raw VALUES (3, '2024-01-01 09:45+00', 3);
SELECT pipeline.run('readings') AS r2 \gset
SELECT is(run_counts(:r2), 'succeeded read=3 ins=1 upd=0 del=0 unch=2 rej=0',
          'run 2 re-reads the lookback and loads the late row');
SELECT results_eq('SELECT sensor, xmin::text FROM readings WHERE sensor <= 2 ORDER BY sensor',
                  'SELECT sensor, x FROM snap1 ORDER BY sensor',
                  'run 2 does not rewrite the re-read rows');
SELECT is(watermark_of('readings')::timestamptz, '2024-01-01 10:30+00'::timestamptz,
          'run 2 keeps the watermark (no row above it)');

-- rows at or beyond the lower bound of the window are not read
INSERT INTO readings_raw VALUES (4, '2024-01-01 09:30+00', 4), (5, '2024-01-01 09:00+00', 5);
SELECT pipeline.run('readings') AS r3 \gset
SELECT is(run_counts(:r3), 'succeeded read=3 ins=0 upd=0 del=0 unch=3 rej=0',
          'run 3: a row exactly at watermark - lookback and an older one are not read');
SELECT results_eq('SELECT * FROM readings ORDER BY sensor',
    $$VALUES (1, '2024-01-01 10:00+00'::timestamptz, 1::numeric),
             (2, '2024-01-01 10:30+00', 2),
             (3, '2024-01-01 09:45+00', 3)$$,
    'run 3: contents');

-- a late row older than the loaded one for its key does not win
INSERT INTO readings_raw VALUES (1, '2024-01-01 09:50+00', 100);
SELECT pipeline.run('readings') AS r4 \gset
SELECT is(run_counts(:r4), 'succeeded read=4 ins=0 upd=0 del=0 unch=3 rej=0',
          'run 4: an older late row for a loaded key is a duplicate');
SELECT is((SELECT value FROM readings WHERE sensor = 1), 1::numeric, 'run 4: the latest row stays');

INSERT INTO readings_raw VALUES (1, '2024-01-01 11:00+00', 11);
SELECT pipeline.run('readings') AS r5 \gset
-- window (09:30, 11:00]: 10:00, 10:30, 09:45, 09:50, 11:00
SELECT is(run_counts(:r5), 'succeeded read=5 ins=0 upd=1 del=0 unch=2 rej=0', 'run 5 counts');
SELECT is(watermark_of('readings')::timestamptz, '2024-01-01 11:00+00'::timestamptz,
          'run 5 advances the watermark');
SELECT results_eq(format('SELECT watermark_from::timestamptz, watermark_to::timestamptz FROM pipeline.runs WHERE run_id = %s', :r5),
                  $$VALUES ('2024-01-01 10:30+00'::timestamptz, '2024-01-01 11:00+00'::timestamptz)$$,
                  'run 5 records the watermarks it moved between');

-- reset to a given timestamp: parsed in the session's time zone, stored in UTC
SET TimeZone = 'America/New_York';
SELECT lives_ok($$SELECT pipeline.reset('readings', '2024-01-01 05:45:00')$$,
                'reset to a timestamp without an offset');
SELECT is(watermark_of('readings')::timestamptz, '2024-01-01 10:45+00'::timestamptz,
          'the reset watermark is the same instant');
SELECT ok(watermark_of('readings') ~ '^2024-01-01[ T]10:45:00', 'and is stored as ISO text in UTC');
SELECT lives_ok($$SELECT pipeline.reset('readings', '2024-01-01 12:45:00+02')$$,
                'reset to a timestamp with an offset');
SELECT ok(watermark_of('readings') ~ '^2024-01-01[ T]10:45:00', 'stored in UTC too');
SET TimeZone = 'UTC';
SELECT throws_ok($$SELECT pipeline.reset('readings', 'not a time')$$, '22007', NULL,
                 'reset with text that is not a timestamp: 22007');
SELECT pipeline.run('readings') AS r6 \gset
-- window (09:45, 11:00]: 10:00, 10:30, 09:50, 11:00
SELECT is(run_counts(:r6), 'succeeded read=4 ins=0 upd=0 del=0 unch=2 rej=0',
          'run 6 reads from the reset watermark minus the lookback');

-- reset to NULL: everything is read again, the old rows are loaded now
SELECT pipeline.reset('readings') AS reset_done \gset
SELECT pipeline.run('readings') AS r7 \gset
SELECT is(run_counts(:r7), 'succeeded read=7 ins=2 upd=0 del=0 unch=3 rej=0',
          'run 7 after reset reads the whole source');
SELECT results_eq('SELECT sensor, value FROM readings ORDER BY sensor',
    $$VALUES (1, 11::numeric), (2, 2), (3, 3), (4, 4), (5, 5)$$,
    'run 7: contents');

-- pause and resume -------------------------------------------------------------
SELECT lives_ok($$SELECT pipeline.pause('readings')$$, 'pause');
SELECT is((SELECT active FROM pipeline.pipelines WHERE name = 'readings'), false, 'paused: inactive');
INSERT INTO readings_raw VALUES (6, '2024-01-01 12:00+00', 6);
SELECT throws_ok($$SELECT pipeline.run('readings')$$, '55000', NULL, 'a paused pipeline refuses to run: 55000');
\set ON_ERROR_STOP 0
CALL pipeline.run_batched('readings', 10);
\set paused_err :SQLSTATE
\set ON_ERROR_STOP 1
SELECT is(:'paused_err'::text, '55000', 'a paused pipeline refuses a batched run: 55000');
SELECT is((SELECT count(*)::int FROM readings WHERE sensor = 6), 0, 'nothing loaded while paused');
SELECT lives_ok($$SELECT pipeline.resume('readings')$$, 'resume');
SELECT is((SELECT active FROM pipeline.pipelines WHERE name = 'readings'), true, 'resumed: active');
SELECT pipeline.run('readings') AS r8 \gset
SELECT is((SELECT status FROM pipeline.runs WHERE run_id = :r8), 'succeeded', 'a resumed pipeline runs');
SELECT is((SELECT value FROM readings WHERE sensor = 6), 6::numeric, 'and loads what arrived while paused');

SELECT * FROM finish();
