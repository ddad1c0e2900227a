-- sql/34_scale.sql
--
-- Scale (issue 12): what a run that finds nothing new records, and when it
-- is recorded in full instead (docs/exactly-once.md, "What a run records");
-- the initial load into an empty target, which must give exactly what the
-- MERGE gives (docs/exactly-once.md, "The initial load").
SET client_min_messages = warning;
CREATE SCHEMA sc_stage;
CREATE SCHEMA sc_core;
CREATE TABLE sc_stage.orders (
    id          bigint PRIMARY KEY,
    amount      integer,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX ON sc_stage.orders (updated_at);
INSERT INTO sc_stage.orders
SELECT g, g * 10, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 5) AS g;
SELECT pipeline.create_pipeline('sc_idle', 'sc_stage.orders', 'sc_core.idle',
                                unique_key => ARRAY['id'], incremental_column => 'updated_at',
                                create_target => true) > 0 AS created;
SELECT pipeline.run('sc_idle') AS first_run \gset

-- A run with nothing new returns a new id, greater than the last run's,
-- writes no run record and no audit entry, and is counted on its pipeline.
SELECT count(*) AS audit_before FROM pipeline.audit_log \gset
SELECT pipeline.run('sc_idle') AS idle1 \gset
SELECT pipeline.run('sc_idle') AS idle2 \gset
SELECT :idle1 > :first_run AS later, :idle2 > :idle1 AS each_its_own;
SELECT count(*) AS records FROM pipeline.runs WHERE pipeline_name = 'sc_idle';
SELECT count(*) - :audit_before AS new_audit_entries FROM pipeline.audit_log;
SELECT idle_runs, last_run_id = :idle2 AS last_is_idle2, last_run_status,
       last_run_finished_at = last_idle_at AS finished, last_success_at = last_idle_at AS success,
       consecutive_failures
  FROM pipeline.status WHERE name = 'sc_idle';
SELECT last_run_id = :idle2 AS last_is_idle2, last_run_status
  FROM pipeline.pipelines WHERE name = 'sc_idle';

-- The count is part of the caller's transaction: a rollback undoes it.
BEGIN;
SELECT pipeline.run('sc_idle') > 0 AS ran;
ROLLBACK;
SELECT idle_runs, last_run_id = :idle2 AS still_idle2 FROM pipeline.status WHERE name = 'sc_idle';

-- A run that loads is recorded as always, and is then the latest run.
INSERT INTO sc_stage.orders VALUES (6, 60, '2024-01-02 00:00:00+00');
SELECT pipeline.run('sc_idle') AS loaded \gset
SELECT status, rows_read, rows_inserted FROM pipeline.runs WHERE run_id = :loaded;
SELECT last_run_id = :loaded AS latest_loaded, idle_runs FROM pipeline.status WHERE name = 'sc_idle';

-- An idle run after a failure is the last success: the failures end.
ALTER TABLE sc_core.idle ADD CONSTRAINT small CHECK (amount < 100) NOT VALID;
INSERT INTO sc_stage.orders VALUES (7, 700, '2024-01-03 00:00:00+00');
SELECT pipeline.run('sc_idle');
SELECT last_run_status, consecutive_failures FROM pipeline.status WHERE name = 'sc_idle';
DELETE FROM sc_stage.orders WHERE id = 7;
SELECT pipeline.run('sc_idle') AS after_failure \gset
SELECT last_run_id = :after_failure AS latest, last_run_status, consecutive_failures
  FROM pipeline.status WHERE name = 'sc_idle';
ALTER TABLE sc_core.idle DROP CONSTRAINT small;

-- Recorded in full: a run that took longer than the timeliness limit (the
-- alert names it), a batched run (its start is recorded first), a run that
-- found rows at infinity.
SELECT pipeline.alter_pipeline('sc_idle', timeliness => '1 microsecond') > 0 AS altered;
SELECT pipeline.run('sc_idle') AS slow \gset
SELECT status, rows_read, batches FROM pipeline.runs WHERE run_id = :slow;
SELECT last_run_id = :slow AS latest, timeliness_state FROM pipeline.status WHERE name = 'sc_idle';
SELECT pipeline.alter_pipeline('sc_idle', timeliness => '1 hour') > 0 AS altered;
CALL pipeline.run_batched('sc_idle', 2);
SELECT status, rows_read, batches FROM pipeline.runs
 WHERE pipeline_name = 'sc_idle' ORDER BY run_id DESC LIMIT 1;
INSERT INTO sc_stage.orders VALUES (8, 80, 'infinity');
SELECT pipeline.run('sc_idle') AS at_infinity \gset
SELECT status, rows_read, rows_rejected, batches FROM pipeline.runs WHERE run_id = :at_infinity;
DELETE FROM sc_stage.orders WHERE id = 8;
SELECT idle_runs FROM pipeline.status WHERE name = 'sc_idle';

-- A run with a lookback always reads its window: it is never idle.
SELECT pipeline.alter_pipeline('sc_idle', lookback => '1 minute') > 0 AS altered;
SELECT pipeline.run('sc_idle') AS lookback_run \gset
SELECT status, rows_read, rows_unchanged FROM pipeline.runs WHERE run_id = :lookback_run;

SELECT pipeline.drop_pipeline('sc_idle', drop_target => true);

-- The initial load ----------------------------------------------------------
--
-- Each case loads one source with two pipelines into targets they created:
-- the first finds its target empty and inserts (initial load); the second's
-- target has a no-op statement trigger on UPDATE, which keeps the MERGE.
-- Contents, counts, watermarks and lineage columns must be the same.
CREATE FUNCTION sc_stage.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE FUNCTION sc_stage.keep_merge(target text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER keep_merge AFTER UPDATE ON %s FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION sc_stage.noop()', target);
END $$;
-- rows in one target and not the other (both ways), over the given columns
CREATE FUNCTION sc_stage.differ(a text, b text, cols text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT %3$s FROM %1$s EXCEPT ALL SELECT %3$s FROM %2$s)'
                   ' UNION ALL (SELECT %3$s FROM %2$s EXCEPT ALL SELECT %3$s FROM %1$s)) d', a, b, cols)
      INTO n;
    RETURN n;
END $$;
-- what the last run of each pipeline counted and left
CREATE VIEW sc_stage.last_runs AS
SELECT DISTINCT ON (pipeline_name) pipeline_name, status, rows_read, rows_inserted, rows_updated,
       rows_deleted, rows_unchanged, rows_rejected, rows_quarantined, batches, watermark_to
  FROM pipeline.runs ORDER BY pipeline_name, run_id DESC;
-- the index definitions of a table, its name replaced by T
CREATE FUNCTION sc_stage.indexes(t regclass) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(replace(replace(pg_get_indexdef(indexrelid), 'INDEX ' || c.relname || '_', 'INDEX T_'),
                              '.' || c.relname || ' ', '.T '), '; ' ORDER BY 1)
      FROM pg_index, pg_class c WHERE indrelid = t AND c.oid = t $$;

-- (a) duplicates (the latest version of a key wins), a delete flag, a NULL
-- key, a row check that quarantines, and a lineage column.
CREATE TABLE sc_stage.events (seq bigserial, k integer, v text, amount integer, del boolean);
CREATE INDEX ON sc_stage.events (seq);
INSERT INTO sc_stage.events (k, v, amount, del) VALUES
    (1, 'a', 10, false), (2, 'b', 20, false), (1, 'a2', 11, false), (3, 'c', 30, false),
    (3, 'c', 30, true), (4, 'gone', 40, true), (NULL, 'nokey', 1, false), (5, 'big', 5000, false),
    (6, 'f', 60, false), (2, 'b2', 21, false);
SELECT pipeline.create_pipeline(p, 'sc_stage.events', 'sc_core.' || p, unique_key => ARRAY['k'],
                                incremental_column => 'seq', delete_column => 'del') > 0 AS created
  FROM unnest(ARRAY['ev', 'ev_m']) AS p;
SELECT sc_stage.keep_merge('sc_core.ev_m');
SELECT pipeline.add_check(p, 'small', 'range', '{"column": "amount", "min": 0, "max": 1000}', 'quarantine') > 0
  FROM unnest(ARRAY['ev', 'ev_m']) AS p;
SELECT pipeline.set_lineage_column(p, 'run') FROM unnest(ARRAY['ev', 'ev_m']) AS p;
-- before its first run: the primary key, and no index on seq yet
SELECT sc_stage.indexes('sc_core.ev');
-- explain shows what the run will do: the INSERT, then the index
SELECT e FROM pipeline.explain('ev') AS e WHERE e LIKE '--%initial load%' OR e LIKE 'CREATE INDEX%';
SELECT count(*) FILTER (WHERE e LIKE 'MERGE%') AS merges FROM pipeline.explain('ev_m') AS e;
SELECT 'sc_core.ev_pkey'::regclass::oid AS ev_key, 'sc_core.ev_m_pkey'::regclass::oid AS ev_m_key \gset
SELECT pipeline.run('ev') AS ev_run, pipeline.run('ev_m') AS ev_m_run \gset
SELECT sc_stage.differ('sc_core.ev', 'sc_core.ev_m', 'seq, k, v, amount, del') AS rows_differ;
SELECT k, v, amount, del, run = :ev_run AS run_is_ev_run FROM sc_core.ev ORDER BY k;
SELECT count(*) AS lineage_ok FROM sc_core.ev_m WHERE run = :ev_m_run;
SELECT * FROM sc_stage.last_runs WHERE pipeline_name IN ('ev', 'ev_m');
SELECT pipeline, key, failed_checks FROM pipeline.quarantine WHERE pipeline IN ('ev', 'ev_m') ORDER BY 1;
-- after it: the primary key as it was, and the index on seq, for the
-- pipelines that read this target incrementally
SELECT sc_stage.indexes('sc_core.ev') AS ev, sc_stage.indexes('sc_core.ev_m') AS ev_m;
-- (the initial load built its primary key anew, after the data; the MERGE kept its own)
SELECT 'sc_core.ev_pkey'::regclass::oid <> :ev_key AS ev_key_built_after,
       'sc_core.ev_m_pkey'::regclass::oid = :ev_m_key AS ev_m_key_kept;
SELECT p.name, w.target_index_pending FROM pipeline.watermark w JOIN pipeline.pipeline p USING (pipeline_id)
 WHERE p.name IN ('ev', 'ev_m') ORDER BY 1;
-- the next run merges, in both
INSERT INTO sc_stage.events (k, v, amount, del) VALUES (1, 'a3', 12, false), (6, 'f', 60, true), (7, 'g', 70, false);
SELECT pipeline.run('ev') > 0 AS ran, pipeline.run('ev_m') > 0 AS ran_m;
SELECT sc_stage.differ('sc_core.ev', 'sc_core.ev_m', 'seq, k, v, amount, del') AS rows_differ;
SELECT * FROM sc_stage.last_runs WHERE pipeline_name IN ('ev', 'ev_m');

-- (b) after reset with a truncated target, a rebuild is an initial load
-- again: the indexes the target has are kept, and filled as it is.
TRUNCATE sc_core.ev, sc_core.ev_m;
SELECT pipeline.reset('ev'), pipeline.reset('ev_m');
SELECT pipeline.run('ev') > 0 AS ran, pipeline.run('ev_m') > 0 AS ran_m;
SELECT sc_stage.differ('sc_core.ev', 'sc_core.ev_m', 'seq, k, v, amount, del') AS rows_differ;
SELECT * FROM sc_stage.last_runs WHERE pipeline_name IN ('ev', 'ev_m');
SELECT sc_stage.indexes('sc_core.ev') AS ev;

-- (c) a target that is not empty keeps the MERGE: a row written into it
-- before the first run is matched (here: updated) as the MERGE would.
CREATE TABLE sc_stage.plain (k integer PRIMARY KEY, v text, seq bigint NOT NULL);
CREATE INDEX ON sc_stage.plain (seq);
INSERT INTO sc_stage.plain VALUES (1, 'one', 1), (2, 'two', 2);
SELECT pipeline.create_pipeline('pl', 'sc_stage.plain', 'sc_core.pl', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
INSERT INTO sc_core.pl VALUES (1, 'old', 0);
SELECT count(*) FILTER (WHERE e LIKE 'MERGE%') AS merges FROM pipeline.explain('pl') AS e;
SELECT pipeline.run('pl') > 0 AS ran;
SELECT * FROM sc_core.pl ORDER BY k;
SELECT status, rows_read, rows_inserted, rows_updated, rows_unchanged FROM sc_stage.last_runs WHERE pipeline_name = 'pl';
SELECT sc_stage.indexes('sc_core.pl') AS pl;

-- (d) an empty window: every row has a NULL key, nothing is inserted, the
-- watermark moves past them, as with the MERGE.
CREATE TABLE sc_stage.nulls (k integer, v text, seq bigint NOT NULL);
INSERT INTO sc_stage.nulls VALUES (NULL, 'x', 1), (NULL, 'y', 2);
SELECT pipeline.create_pipeline(p, 'sc_stage.nulls', 'sc_core.' || p, unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created
  FROM unnest(ARRAY['nu', 'nu_m']) AS p;
SELECT sc_stage.keep_merge('sc_core.nu_m');
SELECT pipeline.run('nu') > 0 AS ran, pipeline.run('nu_m') > 0 AS ran_m;
SELECT * FROM sc_stage.last_runs WHERE pipeline_name IN ('nu', 'nu_m');
SELECT (SELECT count(*) FROM sc_core.nu) AS nu_rows, sc_stage.indexes('sc_core.nu') AS nu;

-- (e) a typed load from text staging, with a value that does not convert
-- (quarantined by the conversion gate), and masks.
CREATE TABLE sc_stage.raw (id text, amount text, email text, phone text, seq bigint NOT NULL);
CREATE INDEX ON sc_stage.raw (seq);
INSERT INTO sc_stage.raw VALUES ('1', '10.50', 'ada@example.com', '+44 20 7946 0000', 1),
    ('02', '3', 'bob@example.com', '+1 555 0100', 2), ('3', 'n/a', 'cy@example.com', NULL, 3),
    ('2', '4', 'bob@example.org', '+1 555 0101', 4);
SELECT pipeline.create_pipeline(p, 'sc_stage.raw', 'sc_core.' || p, unique_key => ARRAY['id'],
                                incremental_column => 'seq',
                                column_types => '{"id": "bigint", "amount": "numeric(10,2)"}',
                                masks => '{"email": "null", "phone": "partial"}') > 0 AS created
  FROM unnest(ARRAY['ty', 'ty_m']) AS p;
SELECT sc_stage.keep_merge('sc_core.ty_m');
SELECT pipeline.run('ty') > 0 AS ran, pipeline.run('ty_m') > 0 AS ran_m;
SELECT sc_stage.differ('sc_core.ty', 'sc_core.ty_m', 'id, amount, email, phone, seq') AS rows_differ;
SELECT * FROM sc_core.ty ORDER BY id;
SELECT * FROM sc_stage.last_runs WHERE pipeline_name IN ('ty', 'ty_m');
SELECT sc_stage.indexes('sc_core.ty') AS ty;

-- (f) a batched first run: the first batch inserts, the later ones merge,
-- and the index comes after the last.
SELECT pipeline.create_pipeline(p, 'sc_stage.events', 'sc_core.' || p, unique_key => ARRAY['k'],
                                incremental_column => 'seq', delete_column => 'del') > 0 AS created
  FROM unnest(ARRAY['bt', 'bt_m']) AS p;
SELECT sc_stage.keep_merge('sc_core.bt_m');
CALL pipeline.run_batched('bt', 4);
CALL pipeline.run_batched('bt_m', 4);
SELECT sc_stage.differ('sc_core.bt', 'sc_core.bt_m', 'seq, k, v, amount, del') AS rows_differ;
SELECT * FROM sc_stage.last_runs WHERE pipeline_name IN ('bt', 'bt_m');
SELECT sc_stage.indexes('sc_core.bt') AS bt;

-- (g) a pipeline registered on a target whose index is still owed gets no
-- advice to create it (the first load will); one on a table without it does.
SET client_min_messages = notice;
SELECT pipeline.create_pipeline('fresh', 'sc_stage.plain', 'sc_core.fresh', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
SELECT pipeline.create_pipeline('down', 'sc_core.fresh', 'sc_core.down', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
SELECT pipeline.create_pipeline('down2', 'sc_stage.nulls', 'sc_core.down2', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
SET client_min_messages = warning;

-- (i) a bulk initial load of many batches (1,000 rows or 64 kB each):
-- 25,000 rows, the same as the MERGE's, every batch written.
CREATE TABLE sc_stage.many (k integer PRIMARY KEY, v text, seq bigint NOT NULL);
CREATE INDEX ON sc_stage.many (seq);
INSERT INTO sc_stage.many SELECT g, repeat('v', g % 50), g FROM generate_series(1, 25000) g;
SELECT pipeline.create_pipeline(p, 'sc_stage.many', 'sc_core.' || p, unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created
  FROM unnest(ARRAY['many', 'many_m']) AS p;
SELECT sc_stage.keep_merge('sc_core.many_m');
SELECT pipeline.run('many') > 0 AS ran, pipeline.run('many_m') > 0 AS ran_m;
SELECT count(*) AS loaded, sc_stage.differ('sc_core.many', 'sc_core.many_m', 'k, v, seq') AS differ
  FROM sc_core.many;
SELECT pipeline_name, status, rows_read, rows_inserted, watermark_to
  FROM sc_stage.last_runs WHERE pipeline_name IN ('many', 'many_m') ORDER BY 1;

-- (j) the same over a captured table's feed (its snapshot of 25,000 rows):
-- the bulk receiver's slots outlive the SELECT that filled them.
CREATE TABLE sc_stage.cap (k integer PRIMARY KEY, v text);
INSERT INTO sc_stage.cap SELECT g, 'v' || g FROM generate_series(1, 25000) g;
SELECT pipeline.create_pipeline('cap', 'sc_stage.cap', 'sc_core.cap', capture => true) > 0 AS created;
SELECT pipeline.run('cap') > 0 AS ran;
SELECT count(*) AS loaded FROM sc_core.cap;
SELECT pipeline.drop_pipeline('cap', drop_target => true);
SELECT pipeline.uncapture('sc_stage.cap');

-- (k) a target you made, with indexes of every kind: a primary key, a
-- unique index on another column, an index on an expression and a partial
-- one. The initial load writes the rows in batches, then builds each index
-- after them as REINDEX would (explain says so): each index gets a new
-- file, its name and definition kept. amcheck finds every index holding
-- exactly the table's rows, and the rows are the MERGE's.
CREATE EXTENSION amcheck;
CREATE FUNCTION sc_stage.make_indexed(t text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %s (k integer PRIMARY KEY, v text, seq bigint NOT NULL UNIQUE)', t);
    EXECUTE format('CREATE INDEX ON %s (upper(v))', t);
    EXECUTE format('CREATE INDEX ON %s (v) WHERE k %% 2 = 0', t);
END $$;
-- checks every index of t against its rows (amcheck, heapallindexed: an
-- entry missing or too many is an error) and counts them
CREATE FUNCTION sc_stage.checked_indexes(t regclass) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(bt_index_check(indexrelid, true)) FROM pg_index WHERE indrelid = t $$;
SELECT sc_stage.make_indexed('sc_core.ix'), sc_stage.make_indexed('sc_core.ix_m');
SELECT sc_stage.keep_merge('sc_core.ix_m');
SELECT pipeline.create_pipeline(p, 'sc_stage.many', 'sc_core.' || p, unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created
  FROM unnest(ARRAY['ix', 'ix_m']) AS p;
SELECT e FROM pipeline.explain('ix') AS e WHERE e LIKE '--%initial load%' OR e LIKE '--%bulk path%';
-- each index's file before the load
CREATE FUNCTION sc_stage.index_files(t regclass) RETURNS TABLE (index regclass, file oid) LANGUAGE sql AS $$
    SELECT indexrelid::regclass, pg_relation_filenode(indexrelid) FROM pg_index WHERE indrelid = t $$;
CREATE TABLE sc_stage.files AS SELECT * FROM sc_stage.index_files('sc_core.ix');
SELECT pipeline.run('ix') > 0 AS ran, pipeline.run('ix_m') > 0 AS ran_m;
SELECT count(*) AS loaded, sc_stage.differ('sc_core.ix', 'sc_core.ix_m', 'k, v, seq') AS differ,
       sc_stage.checked_indexes('sc_core.ix') AS checked_indexes
  FROM sc_core.ix;
SELECT f.index, n.file <> f.file AS built_anew
  FROM sc_stage.files f JOIN sc_stage.index_files('sc_core.ix') n USING (index) ORDER BY 1::text;
SELECT pipeline_name, status, rows_read, rows_inserted, watermark_to
  FROM sc_stage.last_runs WHERE pipeline_name IN ('ix', 'ix_m') ORDER BY 1;
-- the indexes answer queries: by key, by expression, by the partial index
SET enable_seqscan = off;
SELECT (SELECT v FROM sc_core.ix WHERE k = 24999) AS by_key,
       (SELECT count(*) FROM sc_core.ix WHERE upper(v) = 'VVV') AS by_expression,
       (SELECT count(*) FROM sc_core.ix WHERE v = 'vv' AND k % 2 = 0) AS by_partial;
RESET enable_seqscan;

-- Two rows the unique index on v refuses fail the run as the INSERT would
-- (23505, the index named; the context says the index was being built),
-- and leave the target empty and the watermark where it was.
CREATE TABLE sc_stage.dup_v (k integer PRIMARY KEY, v text, seq bigint NOT NULL);
INSERT INTO sc_stage.dup_v SELECT g, 'v' || g, g FROM generate_series(1, 3000) g;
UPDATE sc_stage.dup_v SET v = 'twice' WHERE k IN (1500, 2500);
CREATE TABLE sc_core.uv (k integer PRIMARY KEY, v text UNIQUE, seq bigint NOT NULL);
SELECT pipeline.create_pipeline('uv', 'sc_stage.dup_v', 'sc_core.uv', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
SELECT pipeline.run('uv');
SELECT status, error_sqlstate, error_message FROM pipeline.runs WHERE pipeline_name = 'uv';
SELECT count(*) AS rows_in_target, (SELECT watermark FROM pipeline.pipelines WHERE name = 'uv') AS watermark
  FROM sc_core.uv;
-- The same constraint made DEFERRABLE is checked through a queue the
-- batches do not fill: such a load takes the row-by-row INSERT (no bulk
-- path in explain); with the duplicate gone it loads every row.
ALTER TABLE sc_core.uv DROP CONSTRAINT uv_v_key, ADD CONSTRAINT uv_v_key UNIQUE (v) DEFERRABLE;
SELECT count(*) AS bulk FROM pipeline.explain('uv') AS e WHERE e LIKE '--%bulk path%';
UPDATE sc_stage.dup_v SET v = 'v' || k;
SELECT pipeline.run('uv') > 0 AS ran;
SELECT count(*) AS loaded, sc_stage.checked_indexes('sc_core.uv') AS checked_indexes FROM sc_core.uv;
-- An exclusion constraint is checked by the build as the INSERT checks it
-- (23P01, the constraint named), and nothing is loaded.
UPDATE sc_stage.dup_v SET v = 'twice' WHERE k IN (1500, 2500);
CREATE TABLE sc_core.xv (k integer PRIMARY KEY, v text, seq bigint NOT NULL, EXCLUDE USING btree (v WITH =));
SELECT pipeline.create_pipeline('xv', 'sc_stage.dup_v', 'sc_core.xv', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
SELECT pipeline.run('xv');
SELECT status, error_sqlstate, error_message FROM pipeline.runs WHERE pipeline_name = 'xv';
SELECT count(*) AS rows_in_target FROM sc_core.xv;
UPDATE sc_stage.dup_v SET v = 'v' || k;
-- An index the run's own transaction holds open (a cursor reads the
-- target through it) cannot be built anew: the load fills it row by row,
-- in the file it had, with every row.
CREATE TABLE sc_core.cur (k integer PRIMARY KEY, v text, seq bigint NOT NULL);
SELECT pipeline.create_pipeline('cur', 'sc_stage.dup_v', 'sc_core.cur', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
TRUNCATE sc_stage.files;
INSERT INTO sc_stage.files SELECT * FROM sc_stage.index_files('sc_core.cur');
BEGIN;
SET LOCAL enable_seqscan = off;
DECLARE by_key CURSOR FOR SELECT k FROM sc_core.cur WHERE k > 0;
FETCH by_key;
SELECT pipeline.run('cur') > 0 AS ran;
CLOSE by_key;
COMMIT;
SELECT count(*) AS loaded, sc_stage.checked_indexes('sc_core.cur') AS checked_indexes,
       (SELECT bool_and(n.file = f.file) FROM sc_stage.files f JOIN sc_stage.index_files('sc_core.cur') n
         USING (index)) AS same_files
  FROM sc_core.cur;

-- (l) a target that is one partition of a partitioned table, named on its
-- own: a row outside the partition's bounds fails the run (23514) as an
-- INSERT into that partition does, and nothing is loaded.
CREATE TABLE sc_core.parted (k integer, v text, seq bigint NOT NULL) PARTITION BY RANGE (k);
CREATE TABLE sc_core.parted_low PARTITION OF sc_core.parted FOR VALUES FROM (1) TO (3001);
SELECT pipeline.create_pipeline('low', 'sc_stage.dup_v', 'sc_core.parted_low', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
SELECT count(*) AS bulk FROM pipeline.explain('low') AS e WHERE e LIKE '--%bulk path%';
INSERT INTO sc_stage.dup_v VALUES (3001, 'outside', 3001);
SELECT pipeline.run('low');
SELECT status, error_sqlstate FROM pipeline.runs WHERE pipeline_name = 'low';
SELECT count(*) AS rows_in_partition FROM sc_core.parted_low;
DELETE FROM sc_stage.dup_v WHERE k = 3001;
SELECT pipeline.run('low') > 0 AS ran;
SELECT count(*) AS rows_in_partition FROM sc_core.parted_low;

-- (m) a partitioned target you made: range partitions, one of them
-- partitioned by hash in turn, one attached with its columns in another
-- order and a dropped column, a primary key on them all. The bulk path
-- routes each row as the INSERT would (the executor's tuple routing),
-- each partition written in batches of its own: the same rows as the
-- MERGE's, in the same partitions, every index whole.
CREATE FUNCTION sc_stage.make_parted(t text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %s (k integer, v text, seq bigint NOT NULL, PRIMARY KEY (k)) PARTITION BY RANGE (k)', t);
    EXECUTE format('CREATE TABLE %1$s_a PARTITION OF %1$s FOR VALUES FROM (1) TO (10001)', t);
    EXECUTE format('CREATE TABLE %1$s_b PARTITION OF %1$s FOR VALUES FROM (10001) TO (20001) PARTITION BY HASH (k)', t);
    EXECUTE format('CREATE TABLE %1$s_b0 PARTITION OF %1$s_b FOR VALUES WITH (MODULUS 2, REMAINDER 0)', t);
    EXECUTE format('CREATE TABLE %1$s_b1 PARTITION OF %1$s_b FOR VALUES WITH (MODULUS 2, REMAINDER 1)', t);
    EXECUTE format('CREATE TABLE %s_c (seq bigint NOT NULL, junk integer, v text, k integer NOT NULL)', t);
    EXECUTE format('ALTER TABLE %s_c DROP COLUMN junk', t);
    EXECUTE format('ALTER TABLE %1$s ATTACH PARTITION %1$s_c FOR VALUES FROM (20001) TO (25001)', t);
END $$;
CREATE FUNCTION sc_stage.run_ddl(ddl text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE ddl; END $$;
SELECT sc_stage.make_parted('sc_core.pt'), sc_stage.make_parted('sc_core.pt_m');
SELECT sc_stage.keep_merge('sc_core.pt_m');
SELECT pipeline.create_pipeline(p, 'sc_stage.many', 'sc_core.' || p, unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created
  FROM unnest(ARRAY['pt', 'pt_m']) AS p;
SELECT count(*) AS bulk FROM pipeline.explain('pt') AS e WHERE e LIKE '--%bulk path%';
SELECT pipeline.run('pt') > 0 AS ran, pipeline.run('pt_m') > 0 AS ran_m;
SELECT count(*) AS loaded, sc_stage.differ('sc_core.pt', 'sc_core.pt_m', 'k, v, seq') AS differ FROM sc_core.pt;
SELECT substr(tableoid::regclass::text, 12) AS partition, count(*), min(k), max(k)
  FROM sc_core.pt GROUP BY 1
EXCEPT
SELECT substr(tableoid::regclass::text, 14), count(*), min(k), max(k)
  FROM sc_core.pt_m GROUP BY 1;
SELECT sum(sc_stage.checked_indexes(c)) AS checked_indexes
  FROM unnest(ARRAY['sc_core.pt_a', 'sc_core.pt_b0', 'sc_core.pt_b1', 'sc_core.pt_c']::regclass[]) AS c;
SELECT pipeline_name, status, rows_read, rows_inserted, watermark_to
  FROM sc_stage.last_runs WHERE pipeline_name IN ('pt', 'pt_m') ORDER BY 1;

-- Forty partitions: past 32, a partition's batch gives back its slots and
-- page once written (as COPY FROM bounds them); every row still lands in
-- its partition, and every index is whole.
CREATE TABLE sc_core.p40 (k integer PRIMARY KEY, v text, seq bigint NOT NULL) PARTITION BY RANGE (k);
SELECT count(*) AS partitions FROM generate_series(0, 39) i,
       LATERAL (SELECT format('CREATE TABLE sc_core.p40_%s PARTITION OF sc_core.p40 FOR VALUES FROM (%s) TO (%s)',
                              i, i * 625 + 1, (i + 1) * 625 + 1)) AS d(ddl),
       LATERAL (SELECT sc_stage.run_ddl(ddl)) AS r;
SELECT pipeline.create_pipeline('p40', 'sc_stage.many', 'sc_core.p40', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
SELECT count(*) AS bulk FROM pipeline.explain('p40') AS e WHERE e LIKE '--%bulk path%';
SELECT pipeline.run('p40') > 0 AS ran;
SELECT count(*) AS loaded, count(DISTINCT tableoid) AS partitions_filled,
       bool_and(tableoid = format('sc_core.p40_%s', (k - 1) / 625)::regclass) AS each_in_its_partition,
       (SELECT sum(sc_stage.checked_indexes(inhrelid)) FROM pg_inherits
         WHERE inhparent = 'sc_core.p40'::regclass) AS checked_indexes
  FROM sc_core.p40;

-- A row that no partition takes fails the run as the INSERT would
-- (23514), and nothing is loaded.
CREATE TABLE sc_stage.beyond (k integer PRIMARY KEY, v text, seq bigint NOT NULL);
INSERT INTO sc_stage.beyond VALUES (1, 'in', 1), (30000, 'beyond', 2);
SELECT sc_stage.make_parted('sc_core.pb');
SELECT pipeline.create_pipeline('pb', 'sc_stage.beyond', 'sc_core.pb', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
SELECT pipeline.run('pb');
SELECT status, error_sqlstate FROM pipeline.runs WHERE pipeline_name = 'pb';
SELECT count(*) AS rows_in_target FROM sc_core.pb;
-- a partition with a row trigger keeps the row-by-row INSERT (the trigger
-- fires for each row), whatever its siblings have
CREATE TABLE sc_stage.fired (k integer);
CREATE FUNCTION sc_stage.fire() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO sc_stage.fired VALUES (NEW.k); RETURN NULL; END $$;
CREATE TRIGGER fire AFTER INSERT ON sc_core.pb_b1 FOR EACH ROW EXECUTE FUNCTION sc_stage.fire();
SELECT count(*) AS bulk FROM pipeline.explain('pb') AS e WHERE e LIKE '--%bulk path%';
UPDATE sc_stage.beyond SET k = 10002 WHERE k = 30000;
SELECT pipeline.run('pb') > 0 AS ran;
SELECT k, v, tableoid::regclass AS partition FROM sc_core.pb ORDER BY k;
SELECT k AS fired FROM sc_stage.fired;
SELECT pipeline.drop_pipeline(p) FROM unnest(ARRAY['ix', 'ix_m', 'uv', 'xv', 'cur', 'low', 'pt', 'pt_m', 'p40', 'pb']) AS p;
DROP EXTENSION amcheck;

-- (h) the first load of a target the pipeline's owner no longer owns
-- leaves its index to the table's owner, and says how; its primary key is
-- filled row by row, in the file it had (only a table's owner builds its
-- indexes anew).
CREATE ROLE sc_owner;
GRANT USAGE ON SCHEMA sc_stage, sc_core TO sc_owner;
GRANT CREATE ON SCHEMA sc_core TO sc_owner;
GRANT SELECT ON sc_stage.plain TO sc_owner;
SET ROLE sc_owner;
SELECT pipeline.create_pipeline('given', 'sc_stage.plain', 'sc_core.given', unique_key => ARRAY['k'],
                                incremental_column => 'seq') > 0 AS created;
RESET ROLE;
ALTER TABLE sc_core.given OWNER TO CURRENT_USER;
GRANT INSERT, UPDATE, DELETE, SELECT ON sc_core.given TO sc_owner;
TRUNCATE sc_stage.files;
INSERT INTO sc_stage.files SELECT * FROM sc_stage.index_files('sc_core.given');
SET client_min_messages = notice;
SELECT pipeline.run('given') > 0 AS ran;
SET client_min_messages = warning;
SELECT count(*) AS loaded, sc_stage.indexes('sc_core.given') AS given,
       (SELECT bool_and(n.file = f.file) FROM sc_stage.files f JOIN sc_stage.index_files('sc_core.given') n
         USING (index)) AS same_files
  FROM sc_core.given;
SELECT pipeline.drop_pipeline('given', drop_target => true);
REVOKE ALL ON SCHEMA sc_stage, sc_core FROM sc_owner;
REVOKE ALL ON sc_stage.plain FROM sc_owner;
DROP ROLE sc_owner;
