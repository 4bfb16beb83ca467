-- An event without a table: a transactional logical decoding message
-- carrying a whole CloudEvent (needs outbox.messages.enabled: true and
-- `outbox-cdc setup`, which limits who may call pg_logical_emit_message).
--
--   psql "$DATABASE_URL" -v order_id=1006 -f message.sql
BEGIN;
INSERT INTO orders (id, total) VALUES (:order_id, 42.50);
SELECT pg_logical_emit_message(true, 'outbox', json_build_object(
    'specversion', '1.0',
    'id', gen_random_uuid(),
    'type', 'com.example.order.created',
    'source', '/shop/psql-message',
    'partitionkey', :'order_id',
    'data', json_build_object('order_id', :'order_id', 'total', '42.50'))::text);
COMMIT;
