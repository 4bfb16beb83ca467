// Package checkpoint decides how far the replication slot may move.
//
// Transactions arrive from the decoder in commit order. Each one stays in
// flight until every event in it has been acknowledged by every sink it was
// routed to (see [event.Event.Ack]); the safe LSN is the end LSN of the longest
// prefix of completed transactions. With nothing in flight it follows the WAL
// end the server reports in keepalives, so an idle outbox never pins WAL. A
// Bound caps it at the last WAL position where the outbox tables' publication
// membership was verified.
//
// The checkpoint also owns the window: a bound on the events and bytes in
// flight. When the window is full the replication reader stops reading, so the
// server sees TCP back-pressure instead of this process growing.
package checkpoint
