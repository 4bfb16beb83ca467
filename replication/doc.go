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
package replication
