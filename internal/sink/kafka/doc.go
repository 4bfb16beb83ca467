// Package kafka implements the Kafka sink: events become Kafka records per
// the CloudEvents Kafka protocol binding 1.0, produced with franz-go.
//
// # Mapping
//
// In binary content mode (the default) the record value is the event data as
// is (no value at all for an event without data: a tombstone on a compacted
// topic, as the binding says), the key is the partition key (the aggregate
// id), and the attributes are headers: ce_specversion, ce_id, ce_source,
// ce_type, ce_subject, ce_time, ce_dataschema, content-type (the
// datacontenttype) and one ce_<name> per extension, including ce_partitionkey
// and ce_pglsn. Optional attributes that are empty are left out. In structured
// mode the value is the CloudEvents JSON format and the only header is
// content-type: application/cloudevents+json. Records are partitioned by
// murmur2 of the key, as the Java client does, so other producers of the same
// keys land on the same partitions. The record timestamp is when the sink took
// the event (CreateTime), not the event's time: retention then counts from
// publication, and a backlog of old events is not refused by the brokers'
// timestamp bounds nor deleted at once by time-based retention.
//
// # Delivery, order and retries
//
// The sink is the Kafka adapter of the shared delivery engine
// (internal/delivery): it builds records, produces them and maps franz-go's
// errors (by Kafka's own error table, kerr); the engine owns the in-flight
// window (Config.MaxInFlight), the sticky failure, Flush and Close. Its
// acknowledgements are not ordered across partitions: franz-go keeps the
// order within each.
//
// The producer is idempotent with acks=all. franz-go keeps up to five produce
// requests in flight per broker and retries every retriable failure
// (connection refused, timeouts, leader changes, a broker down for minutes)
// itself, without a retry or time limit, resending failed batches in their
// original order under the same producer id and sequence numbers, so the
// broker drops the copies it already holds and a partition never sees a
// later record before an earlier one. Events of one aggregate share a key,
// hence a partition, hence this order. An event is acknowledged (its
// replication-slot position released) only in franz-go's promise, after the
// partition leader and all in-sync replicas have it.
//
// While a broker is unreachable the sink logs one line (per broker address)
// when it goes and one when a connection to it or a produce through it
// succeeds again, and reports every failed attempt to Observer.Retried.
//
// # Permanent failures
//
// Failures that are known before a record is produced are returned from
// Publish at once, without taking that event or any after it in the call:
// a template that fails on the event, an invalid topic name, a missing topic
// with create_topics off, a topic the broker refuses to create, and an event
// that does not fit in a record batch (its size is checked against the
// topic's max.message.bytes, read from the broker). The sink stays usable.
//
// A record the brokers reject for good (MESSAGE_TOO_LARGE after a topic's
// limit was lowered, TOPIC_AUTHORIZATION_FAILED, ...) is reported from the
// next Publish or Flush, as the *sink.PermanentError of the earliest such
// record, and from then on the sink takes no events. franz-go fails every
// record buffered behind the rejected one in the same partition with the
// same error, and the broker, expecting the rejected sequence number, keeps
// none of the requests already in flight behind it, so no later record of
// the same key is stored or acknowledged. Records Publish handed over for
// the same partition after franz-go failed the partition (before the sink
// saw the failure) may still be stored and acknowledged; records in other
// partitions are unaffected. None of this moves the slot past the rejected
// event: on restart it and everything after it is sent again, and consumers
// may see the later records twice.
//
// The Observer's Duplicate is never called: Kafka drops idempotent
// duplicates without telling the producer.
package kafka
