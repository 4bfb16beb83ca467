"""Write one order and its event in one transaction, with psycopg 3.

    DATABASE_URL=postgres://app@127.0.0.1:5432/shop ORDER_ID=1002 python publish.py
"""
import json
import os

import psycopg

order_id = os.environ["ORDER_ID"]

with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    # One transaction: the order and its event commit together.
    with conn.transaction():
        conn.execute("INSERT INTO orders (id, total) VALUES (%s, 42.50)", (order_id,))
        (event_id,) = conn.execute(
            "SELECT outbox_publish(%s, %s, %s::jsonb, %s, %s)",
            (
                "com.example.order.created",  # type
                "/shop/python",  # source
                json.dumps({"order_id": order_id, "total": "42.50"}),  # data
                "order",  # aggregate_type: routing (topic outbox.order)
                order_id,  # aggregate_id: partition key and order
            ),
        ).fetchone()
    print(f"event {event_id} written")
