// Package sink defines the Sink interface that every destination implements,
// the options every sink is built with, the routing of events to sinks, and
// the one predicate for failures that retrying cannot fix ([IsPermanent]).
//
// A sink is asynchronous: Publish hands it events in order and returns once it
// has taken them; the sink calls its acknowledgement handle, Options.Ack, on
// each event only after its broker acknowledged it. The handle is bound to the
// sink by the fan-out (internal/fanout), so a sink has no index or other state
// to keep in step with anything; the checkpoint counts those
// acknowledgements, so a sink must never acknowledge an event it merely sent.
//
// Destinations (topic, subject, stream) are [Template]s over the event,
// checked against the broker's [DestinationRules]: a name that cannot exist,
// such as "outbox." from "outbox.{{.AggregateType}}" and an event without an
// aggregate type, is a [*DestinationError], which the sink reports as a
// [*PermanentError] so that the sink's policy applies. Under policy block
// such an event holds the sink without retries, since only a new template
// and a restart can change it.
//
// The sinks themselves live in sub-packages, one per destination: internal/sink/file
// (stdout and files), internal/sink/kafka, internal/sink/nats and internal/sink/redis.
package sink
