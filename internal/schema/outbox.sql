-- outbox-cdc schema. Applied by `outbox-cdc setup` with the configured names
-- substituted; safe to apply again. Identifiers below are Go template
-- placeholders.

-- The outbox table: applications insert one row per event, in the same
-- transaction as their business data. Rows may be deleted right away, in the
-- same transaction: the WAL already carries them.
CREATE TABLE IF NOT EXISTS {{.Table}} (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    type            text        NOT NULL,
    source          text        NOT NULL,
    subject         text,
    aggregate_type  text,
    aggregate_id    text,
    data            jsonb,
    datacontenttype text        DEFAULT 'application/json',
    dataschema      text,
    headers         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- outbox_publish writes one event in one call from any language:
--   SELECT outbox_publish('order.created', '/shop/orders', '{"id": 42}', 'order', '42');
CREATE OR REPLACE FUNCTION {{.Function}}(
    p_type           text,
    p_source         text,
    p_data           jsonb DEFAULT NULL,
    p_aggregate_type text  DEFAULT NULL,
    p_aggregate_id   text  DEFAULT NULL,
    p_subject        text  DEFAULT NULL,
    p_headers        jsonb DEFAULT NULL
) RETURNS uuid
LANGUAGE sql
AS $$
    INSERT INTO {{.Table}} (type, source, data, aggregate_type, aggregate_id, subject, headers)
    VALUES (p_type, p_source, p_data, p_aggregate_type, p_aggregate_id, p_subject, p_headers)
    RETURNING id
$$;
