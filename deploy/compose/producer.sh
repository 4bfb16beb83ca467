#!/bin/sh
# The compose stack's sample producer: one order and its event per second,
# written in one transaction as an application would (outbox_publish).
set -eu
n=0
while :; do
	n=$((n + 1))
	kind=order
	[ $((n % 3)) -eq 0 ] && kind=payment
	psql -v ON_ERROR_STOP=1 -q -c "
BEGIN;
INSERT INTO orders (id, total) VALUES ($n, $n * 1.5) ON CONFLICT (id) DO NOTHING;
SELECT outbox_publish('com.example.$kind.created', '/shop/$kind', jsonb_build_object('order_id', $n, 'total', $n * 1.5), '$kind', '$n');
COMMIT;" >/dev/null
	sleep "${PRODUCER_INTERVAL:-1}"
done
