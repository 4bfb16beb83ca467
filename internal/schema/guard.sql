-- The outbox-cdc DDL guard, installed by `outbox-cdc setup` when the role is a
-- superuser (CREATE EVENT TRIGGER needs one) and removed by `outbox-cdc
-- teardown`. While a replication slot recorded in {{.Table}} exists, it
-- refuses any command that drops or renames one of its outbox tables, takes it
-- out of the publication (ALTER PUBLICATION ... DROP TABLE / SET TABLE, DROP
-- PUBLICATION, DROP TABLES IN SCHEMA), stops the publication from publishing
-- inserts, or puts a row filter or column list on it: rows written meanwhile
-- would never reach the slot. `SET outbox_cdc.allow_ddl = on` lets such a
-- command through on purpose; it then writes a transactional logical message
-- (prefix outbox-cdc.ddl, never published) so the stream sees the change at its
-- exact WAL position and outbox-cdc stops there with a named error.
--
-- The check runs after every command that touches a guarded table, its schema
-- or a publication (a few catalog lookups), and evaluates the state after the
-- command, whatever its syntax. It runs as its owner (SECURITY DEFINER) so that
-- roles without access to {{.Table}} can still run DDL.
CREATE OR REPLACE FUNCTION {{.Function}}() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $guard$
DECLARE
    g        record;
    pub      record;
    cur      text;
    touched  boolean;
    member   boolean;
    filtered boolean;
    problem  text;
    pubcats  oid[] := ARRAY(SELECT c.oid FROM pg_class c
                            WHERE c.relnamespace = 'pg_catalog'::regnamespace
                              AND c.relname IN ('pg_publication', 'pg_publication_rel', 'pg_publication_namespace'));
    has_pn   boolean := to_regclass('pg_catalog.pg_publication_namespace') IS NOT NULL;
BEGIN
    FOR g IN
        SELECT s.slot, s.table_name, s.table_oid, s.publication,
               (SELECT c.relnamespace FROM pg_class c WHERE c.oid = s.table_oid) AS nsp
        FROM {{.Table}} s
        WHERE s.current AND s.guarded
          AND EXISTS (SELECT 1 FROM pg_replication_slots r
                      WHERE r.slot_name = s.slot AND r.database = current_database())
    LOOP
        IF TG_EVENT = 'sql_drop' THEN
            SELECT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() d
                           WHERE d.objid = g.table_oid OR d.objid = g.nsp OR d.classid = ANY (pubcats))
              INTO touched;
        ELSE
            SELECT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() d
                           WHERE d.objid = g.table_oid OR d.objid = g.nsp OR d.classid = ANY (pubcats))
              INTO touched;
        END IF;
        CONTINUE WHEN NOT touched;

        problem := NULL;
        SELECT n.nspname || '.' || c.relname INTO cur
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = g.table_oid;
        SELECT p.oid, p.pubinsert, p.puballtables INTO pub FROM pg_publication p WHERE p.pubname = g.publication;
        IF cur IS NULL THEN
            problem := format('drops outbox table %s', g.table_name);
        ELSIF cur <> g.table_name THEN
            problem := format('renames outbox table %s to %s', g.table_name, cur);
        ELSIF pub.oid IS NULL THEN
            problem := format('drops publication %s, which streams outbox table %s', g.publication, g.table_name);
        ELSIF NOT pub.pubinsert THEN
            problem := format('stops publication %s from publishing inserts into outbox table %s', g.publication, g.table_name);
        ELSE
            member := pub.puballtables OR EXISTS (
                SELECT 1 FROM pg_publication_rel pr
                WHERE pr.prpubid = pub.oid
                  AND (pr.prrelid = g.table_oid OR pr.prrelid IN (SELECT relid FROM pg_partition_ancestors(g.table_oid))));
            filtered := false;
            IF has_pn THEN
                IF NOT member THEN
                    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace pn
                                 JOIN pg_catalog.pg_class c ON c.relnamespace = pn.pnnspid
                                 WHERE pn.pnpubid = $1
                                   AND (c.oid = $2 OR c.oid IN (SELECT relid FROM pg_catalog.pg_partition_ancestors($2))))'
                       INTO member USING pub.oid, g.table_oid;
                END IF;
                EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr
                             WHERE pr.prpubid = $1 AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL)
                               AND (pr.prrelid = $2 OR pr.prrelid IN (SELECT relid FROM pg_catalog.pg_partition_ancestors($2))))'
                   INTO filtered USING pub.oid, g.table_oid;
            END IF;
            IF NOT member THEN
                problem := format('takes outbox table %s out of publication %s', g.table_name, g.publication);
            ELSIF filtered THEN
                problem := format('puts a row filter or column list on outbox table %s in publication %s', g.table_name, g.publication);
            END IF;
        END IF;
        CONTINUE WHEN problem IS NULL;

        IF lower(coalesce(current_setting('outbox_cdc.allow_ddl', true), '')) IN ('on', 'true', '1', 'yes') THEN
            PERFORM pg_logical_emit_message(true, 'outbox-cdc.ddl',
                json_build_object('slot', g.slot, 'table', g.table_name, 'oid', g.table_oid,
                                  'publication', g.publication, 'change', problem)::text);
            RAISE WARNING 'outbox-cdc: this command %, allowed by outbox_cdc.allow_ddl', problem
                USING HINT = 'outbox-cdc follows a rename, but stops with a named error at a drop or at a table taken out of the publication. Run `outbox-cdc setup` once the outbox is as it should be, then re-send what was written meanwhile with `outbox-cdc backfill`.';
        ELSE
            RAISE EXCEPTION 'outbox-cdc: this command % while replication slot % streams it', problem, g.slot
                USING ERRCODE = 'object_in_use',
                      DETAIL = 'outbox-cdc streams the outbox table by identity through the publication; rows written while it is renamed, dropped or out of the publication are lost to the stream or go to the wrong table.',
                      HINT = 'To do it on purpose, run SET outbox_cdc.allow_ddl = on in this session first (outbox-cdc then stops with a named error; `outbox-cdc backfill` re-sends the rows written meanwhile), or remove outbox-cdc first with `outbox-cdc teardown --yes`.';
        END IF;
    END LOOP;
END
$guard$;

DO $install$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'outbox_cdc_guard_ddl') THEN
        CREATE EVENT TRIGGER outbox_cdc_guard_ddl ON ddl_command_end EXECUTE FUNCTION {{.Function}}();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'outbox_cdc_guard_drop') THEN
        CREATE EVENT TRIGGER outbox_cdc_guard_drop ON sql_drop EXECUTE FUNCTION {{.Function}}();
    END IF;
END
$install$;
