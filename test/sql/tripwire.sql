-- test/sql/tripwire.sql
--
-- Owner code at every hook a pipeline can reach, for the tripwire tests
-- (test/pgtap/11_owner_tripwire.sql, test/t/012_owner_tripwire.pl). Run as
-- a superuser with psql variable :owner set to the pipeline owner's role,
-- which must exist. Every hook calls tw.tripwire(hook), which records in
-- tw.log who ran it (current_user), whether it ran as a security-restricted
-- operation (CREATE TEMP TABLE is refused there) and the search_path; a
-- hook evaluated with anyone else's rights shows up as a row whose "who" is
-- not the owner, or whose "restricted" is false.
--
-- Hooks: a source view's WHERE, a domain CHECK on the incremental column
-- (reached by the watermark's conversion and by the load), a target
-- column's DEFAULT, a row trigger on the target, an index expression on the
-- target, a user-defined assignment cast from the source's type to the
-- target's, a rule on an append pipeline's target, and the SQL of an
-- expression check (in the load statement, and in a quarantine replay) and
-- of a query check (after the load).
CREATE SCHEMA tw AUTHORIZATION :"owner";
SET ROLE :"owner";

CREATE TABLE tw.log (hook text, who text, restricted boolean, path text,
                     at timestamptz DEFAULT clock_timestamp());

-- restricted() tells whether the caller runs in a security-restricted
-- operation: CREATE TEMP TABLE is refused there (42501); elsewhere the table
-- is created and the block rolls it back.
CREATE FUNCTION tw.restricted() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        CREATE TEMP TABLE tw_probe (x int);
        RAISE EXCEPTION 'probe' USING ERRCODE = 'P0001';
    EXCEPTION
        WHEN insufficient_privilege THEN RETURN true;
        WHEN raise_exception THEN RETURN false;
    END;
END $$;

CREATE FUNCTION tw.tripwire(hook text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tw.log (hook, who, restricted, path)
    VALUES (hook, current_user, tw.restricted(), current_setting('search_path'));
    RETURN true;
END $$;

-- index expressions need an immutable function; it calls the volatile one
CREATE FUNCTION tw.tripwire_key(k integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM tw.tripwire('index');
    RETURN k;
END $$;

CREATE FUNCTION tw.tripwire_default() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tw.tripwire('default');
    RETURN 'd';
END $$;

CREATE FUNCTION tw.tripwire_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tw.tripwire('trigger');
    RETURN NEW;
END $$;

CREATE DOMAIN tw.seq_t AS bigint CHECK (tw.tripwire('domain'));
CREATE TYPE tw.color AS ENUM ('red', 'green');
CREATE FUNCTION tw.color_text(c tw.color) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tw.tripwire('cast');
    RETURN c::name::text;
END $$;
CREATE CAST (tw.color AS text) WITH FUNCTION tw.color_text(tw.color) AS ASSIGNMENT;

CREATE TABLE tw.src (id integer, seq tw.seq_t NOT NULL, color tw.color);
CREATE VIEW tw.src_v AS SELECT id, seq, color FROM tw.src WHERE tw.tripwire('view');

-- merge target: default, trigger, index expression
CREATE TABLE tw.tgt (id integer PRIMARY KEY, seq tw.seq_t, color tw.color,
                     d text DEFAULT tw.tripwire_default());
CREATE INDEX ON tw.tgt ((tw.tripwire_key(id)));
CREATE TRIGGER tw_tgt BEFORE INSERT OR UPDATE ON tw.tgt
    FOR EACH ROW EXECUTE FUNCTION tw.tripwire_trigger();

-- append target (INSERT, so a rule is allowed; color is text: the cast)
CREATE TABLE tw.appended (id integer, seq tw.seq_t, color text);
CREATE TABLE tw.rule_log (id integer);
CREATE RULE tw_rule AS ON INSERT TO tw.appended
    DO ALSO INSERT INTO tw.rule_log SELECT NEW.id WHERE tw.tripwire('rule');

SELECT pipeline.create_pipeline('tw merge', 'tw.src_v', 'tw.tgt', unique_key => '{id}',
                                incremental_column => 'seq', create_target => false) > 0 AS created;
SELECT pipeline.create_pipeline('tw append', 'tw.src_v', 'tw.appended',
                                incremental_column => 'seq', mode => 'append',
                                create_target => false) > 0 AS created;
-- data checks whose SQL is owner code: an expression check (in the load
-- statement; it quarantines row 4) and a query check (after the load)
SELECT pipeline.add_check('tw merge', 'tw expression', 'expression',
                          '{"sql": "tw.tripwire(''check_expression'') AND id <> 4"}', 'quarantine') > 0 AS added;
SELECT pipeline.add_check('tw merge', 'tw query', 'query',
                          '{"sql": "SELECT 1 WHERE NOT tw.tripwire(''check_query'')"}', 'warn') > 0 AS added;
RESET ROLE;
