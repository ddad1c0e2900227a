-- bench/hand_written.sql
--
-- The hand-written equivalent of one pipeline.run, as a data engineer would
-- write it without pg_pipeline: keep a watermark per target, read the
-- high-water mark, load the window (watermark, high-water mark] with one
-- MERGE, and advance the watermark, all in the caller's transaction.
--
-- The MERGE's change detection is the engine's: IS DISTINCT FROM on every
-- column but the key and the incremental column (a row re-delivered with
-- only a newer updated_at is unchanged). Like the engine, it skips the MERGE
-- when nothing is new, passes the bounds as parameters (a one-shot plan, the
-- values known to the planner), omits the lower bound when there is no
-- watermark yet, and locks the target SHARE ROW EXCLUSIVE. It does not
-- record runs, count rows by kind, check privileges or wait for in-flight
-- writers: the engine's time includes all of that.
CREATE TABLE bench.hand_watermark (
    target  text PRIMARY KEY,
    lo      timestamptz
);

CREATE FUNCTION bench.hand_run(tgt text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    lo      timestamptz;
    hi      timestamptz;
    loaded  bigint;
    merge   text := $m$
        MERGE INTO bench.%I AS t
        USING (SELECT s.id, s.customer_id, s.status, s.amount, s.note,
                      s.ordered_at, s.updated_at
                 FROM bench.src AS s
                WHERE %s s.updated_at <= $2) AS s
           ON t.id = s.id
         WHEN MATCHED AND (t.customer_id IS DISTINCT FROM s.customer_id
                        OR t.status IS DISTINCT FROM s.status
                        OR t.amount IS DISTINCT FROM s.amount
                        OR t.note IS DISTINCT FROM s.note
                        OR t.ordered_at IS DISTINCT FROM s.ordered_at)
         THEN UPDATE SET customer_id = s.customer_id, status = s.status,
                         amount = s.amount, note = s.note,
                         ordered_at = s.ordered_at, updated_at = s.updated_at
         WHEN NOT MATCHED
         THEN INSERT (id, customer_id, status, amount, note, ordered_at, updated_at)
              VALUES (s.id, s.customer_id, s.status, s.amount, s.note,
                      s.ordered_at, s.updated_at)$m$;
BEGIN
    SELECT w.lo INTO lo FROM bench.hand_watermark AS w WHERE w.target = tgt FOR UPDATE;
    SELECT max(s.updated_at) INTO hi FROM bench.src AS s;
    IF hi IS NULL OR hi <= lo THEN
        RETURN 0;                       -- nothing new
    END IF;
    EXECUTE format('LOCK TABLE bench.%I IN SHARE ROW EXCLUSIVE MODE', tgt);
    EXECUTE format(merge, tgt, CASE WHEN lo IS NULL THEN '' ELSE 's.updated_at > $1 AND' END)
      USING lo, hi;
    GET DIAGNOSTICS loaded = ROW_COUNT;
    UPDATE bench.hand_watermark SET lo = hi WHERE target = tgt;
    RETURN loaded;
END
$fn$;
