// Package event defines the Event that flows from the decoder to the sinks: a
// CloudEvent (specversion 1.0) built from one outbox row or one logical
// decoding message, together with its position in the write-ahead log.
//
// An Event is created by the decoder and read (never modified) by every sink
// it is routed to. A sink acknowledges it through the handle its options
// carry (sink.Options.Ack), never through the event: which sinks still owe
// an event its acknowledgement is the checkpoint's state, not the event's.
// Encoders for the CloudEvents JSON format (structured mode) live here so that
// every sink writes the same bytes.
package event
