// Read a NATS message with the CloudEvents JavaScript SDK, as a consumer
// would without configuration: the SDK has no NATS binding, so the
// message's headers and payload go to its generic reader (HTTP.toEvent,
// which picks the mode from the headers).
//
//   node read.js MESSAGE.json   (MESSAGE.json: {"headers": {...}, "data": "<base64>"})
//
// Prints the event's attributes as JSON, or {"error": "..."}.
const fs = require("fs");
const { HTTP } = require("cloudevents");

const msg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
try {
  const ev = HTTP.toEvent({ headers: msg.headers, body: Buffer.from(msg.data, "base64").toString("utf8") });
  console.log(JSON.stringify({
    specversion: ev.specversion, id: ev.id, source: ev.source, type: ev.type,
    subject: ev.subject, datacontenttype: ev.datacontenttype,
    partitionkey: ev.partitionkey, traceparent: ev.traceparent, data: ev.data,
  }));
} catch (err) {
  console.log(JSON.stringify({ error: `${err.name}: ${err.message}` }));
}
