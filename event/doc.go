// Package event defines the Event that flows from the decoder to the sinks: a
// CloudEvent (specversion 1.0) built from one outbox row or one logical
// decoding message, together with its position in the write-ahead log and the
// acknowledgement bookkeeping the checkpoint needs.
//
// An Event is created by the decoder, read (never modified) by every sink it is
// routed to, and acknowledged by each of them exactly once with [Event.Ack].
// Encoders for the CloudEvents JSON format (structured mode) live here so that
// every sink writes the same bytes.
package event
