#!/usr/bin/env bash
# demo.sh — the main job on a fresh machine: start a throwaway PostgreSQL
# cluster with wal_level=logical, set up the outbox, stream a few events to
# stdout as CloudEvents, stop cleanly and remove everything.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$repo/bin/outbox-cdc"

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z "$pg_bin" || ! -x "$pg_bin/initdb" ]]; then
	[[ $(id -u) -eq 0 ]] || { echo "demo: PostgreSQL is not installed; run as root or: apt-get install postgresql" >&2; exit 1; }
	echo "demo: installing PostgreSQL (Debian package)"
	policy=/usr/sbin/policy-rc.d; own=0
	[[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >$policy; chmod 755 $policy; own=1; }
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
	[[ $own == 1 ]] && rm -f $policy
	pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

dir=$(mktemp -d /tmp/outbox-cdc-demo.XXXXXX)
chmod 755 "$dir"
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
	chown postgres "$dir"
	as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
	[[ -n "${run_pid:-}" ]] && kill "$run_pid" 2>/dev/null || true
	"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

echo "demo: starting PostgreSQL on 127.0.0.1:$port (wal_level=logical)"
"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
	-o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c wal_level=logical" start >/dev/null
psql=("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
"${psql[@]}" -c "CREATE DATABASE shop" postgres

cat >"$dir/outbox-cdc.yaml" <<YAML
postgres:
  url: postgres://postgres@127.0.0.1:$port/shop
  slot: outbox_cdc
  publication: outbox_cdc
outbox:
  messages: {enabled: true}   # pg_logical_emit_message events (setup locks the function down)
sinks:
  - {name: console, type: stdout}
http: {addr: "-"}
log: {level: info}
YAML

echo "demo: outbox-cdc setup"
"$bin" setup --config "$dir/outbox-cdc.yaml"

echo "demo: outbox-cdc run (events below are CloudEvents, one JSON per line)"
"$bin" run --config "$dir/outbox-cdc.yaml" 2>"$dir/run.log" &
run_pid=$!
for _ in $(seq 1 50); do
	grep -q streaming "$dir/run.log" && break
	sleep 0.1
done

"${psql[@]}" shop <<'SQL'
BEGIN;
-- business data and its event commit together
CREATE TABLE orders (id int PRIMARY KEY, total numeric);
INSERT INTO orders VALUES (1001, 42.50);
SELECT outbox_publish('com.example.order.created', '/shop/orders', '{"order_id": 1001, "total": 42.50}', 'order', '1001') \gset
COMMIT;
INSERT INTO outbox (type, source, subject, aggregate_type, aggregate_id, data, headers)
VALUES ('com.example.order.paid', '/shop/payments', 'order/1001', 'order', '1001',
        '{"order_id": 1001, "method": "card"}', '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}');
SELECT pg_logical_emit_message(true, 'outbox',
  '{"specversion":"1.0","id":"c0ffee","type":"com.example.inventory.reserved","source":"/shop/inventory","partitionkey":"sku-7","data":{"sku":"sku-7","qty":2}}') \gset
SQL

sleep 1.5
kill -TERM "$run_pid"
wait "$run_pid"
run_pid=
echo "demo: outbox-cdc stopped cleanly; its log:"
sed 's/^/  /' "$dir/run.log"
echo "demo: outbox-cdc status"
"$bin" status --config "$dir/outbox-cdc.yaml" | sed 's/^/  /'
echo "demo: outbox-cdc teardown --yes"
"$bin" teardown --yes --config "$dir/outbox-cdc.yaml" | sed 's/^/  /'
echo "demo: done"
