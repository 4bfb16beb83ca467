// Package checkpoint is the acknowledgement tracker: it decides how far the
// replication slot may move, and how far each sink has acknowledged.
//
// Transactions arrive from the decoder in commit order. For each one the
// checkpoint records which registered sinks (see [Checkpoint.AddSink]) each of
// its events was routed to, and each sink acknowledges an event through its
// [Sink] (the fan-out binds [Sink.Ack] into the sink's acknowledgement handle,
// sink.Options.Ack). A second acknowledgement from the same sink, or one for
// an event the sink does not owe, is ignored. From that one record come:
//
//   - the safe LSN: the end LSN of the longest prefix of transactions whose
//     every event every routed sink acknowledged. With nothing in flight it
//     follows the WAL end the server reports in keepalives, so an idle outbox
//     never pins WAL; a Bound caps it at the last WAL position where the
//     outbox tables' publication membership was verified;
//   - per-sink progress ([Sink.Progress], [Checkpoint.Positions]): the
//     position below which every event routed to that sink is acknowledged by
//     it, which the progress table stores; after a restart, [Checkpoint.Restore]
//     takes it back, and an event a sink acknowledged before is not routed to
//     it again;
//   - the window: a bound on the events and bytes in flight. When the window
//     is full the replication reader stops reading, so the server sees TCP
//     back-pressure instead of this process growing.
//
// The per-event part of the record lives in the event itself, unexported
// (internal/ackstate): an acknowledgement takes no lock and allocates
// nothing.
package checkpoint
