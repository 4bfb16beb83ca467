"""Read a NATS message's payload with the CloudEvents Python SDK, as a
consumer would without configuration: the SDK has no NATS binding, so the
payload goes to its JSON event format reader.

    python read.py MESSAGE.json   (MESSAGE.json: {"headers": {...}, "data": "<base64>"})

Prints the event's attributes as JSON, or {"error": "..."}.
"""
import base64
import json
import sys

from cloudevents.core.formats.json import JSONFormat

msg = json.load(open(sys.argv[1]))
try:
    ev = JSONFormat().read(None, base64.b64decode(msg["data"]))
except Exception as err:  # noqa: BLE001 - report whatever the SDK says
    print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
    sys.exit(0)
attrs = {
    "specversion": ev.get_specversion(),
    "id": ev.get_id(),
    "source": ev.get_source(),
    "type": ev.get_type(),
    "subject": ev.get_subject(),
    "datacontenttype": ev.get_datacontenttype(),
    "partitionkey": ev.get_extension("partitionkey"),
    "traceparent": ev.get_extension("traceparent"),
    "data": ev.get_data(),
}
print(json.dumps(attrs))
