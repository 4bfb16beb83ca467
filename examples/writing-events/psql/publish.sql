-- Write one order and its event in one transaction, with plain SQL: the
-- outbox contract is a table, any client that can INSERT can publish.
--
--   psql "$DATABASE_URL" -v order_id=1005 -f publish.sql
BEGIN;
INSERT INTO orders (id, total) VALUES (:order_id, 42.50);
INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data, headers)
VALUES ('com.example.order.created', '/shop/psql', 'order', :'order_id',
        jsonb_build_object('order_id', :'order_id', 'total', '42.50'),
        -- each key becomes a CloudEvents extension attribute
        '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}');
COMMIT;
