// Package sink defines the Sink interface that every destination implements,
// the routing of events to sinks, and the fan-out that runs one pipeline per
// sink.
//
// A sink is asynchronous: Publish hands it events in order and returns once it
// has taken them; the sink calls [event.Event.Ack] on each event only after its
// broker acknowledged it. The checkpoint counts those acknowledgements, so a
// sink must never acknowledge an event it merely sent.
//
// The sinks themselves live in sub-packages, one per destination: sink/file
// (stdout and files), sink/kafka, sink/nats and sink/redis.
package sink
