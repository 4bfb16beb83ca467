// Package replication owns the logical replication connection.
//
// One goroutine ([Stream.Run]) connects with replication=database, waits as a
// hot standby while another process holds the slot, starts pgoutput from the
// slot's confirmed position, hands every XLogData payload to a Consumer,
// answers keepalives, and reports the Consumer's safe LSN to the server as the
// write, flush and apply positions (all three set explicitly: a zero flush
// position would be replaced by the write position and move the slot past
// unacknowledged data). When the Consumer's window is full it stops reading,
// so the server sees TCP back-pressure. After a connection loss it reconnects
// with backoff.
//
// While it waits for the slot it names the holder ([Stream.Holder], from
// pg_stat_activity): another outbox-cdc (application_name "outbox-cdc") is a
// hot standby's normal peer; any other program is logged as such, once per
// holder. A slot the server invalidated (wal_status lost) is a
// *SlotInvalidatedError, at the first look at the slot or when the server
// refuses to stream it, never a reconnect loop.
package replication
