// Package backfill re-publishes outbox rows read from the outbox tables
// themselves, for rows the replication slot never carried or lost: rows
// written while a table was out of the publication, rows after the position
// of an invalidated slot. It is `outbox-cdc backfill`.
//
// A row becomes an event through the decoder's own mapping
// (decoder.TableRows: the same columns, validation, default source and
// extensions as a streamed row), so a backfilled event has the id and the
// attributes its streamed copy had, and brokers that deduplicate drop what
// they already hold. Only the pglsn extension is missing: the commit LSN is
// in the WAL, not in the table.
//
// Rows are read in pages (Options.BatchSize) with keyset paging in the
// order time column, then insert order within a transaction (command id,
// then the row's place in the table), so memory stays bounded however many
// rows match; each page is published to every selected sink through the
// sink's normal path (route, destination template, CloudEvents binding) and
// acknowledged before the next page is read. Events are not in commit order
// relative to events already streamed.
//
// A row that cannot become a CloudEvent follows outbox.on_invalid: "block"
// stops the backfill with an error naming the row (what came before it was
// published), "dead-letter" stores it and goes on. An event a sink refuses
// for good stops the backfill with an error naming the row and the sink,
// whatever the sink's policy. A Redis sink whose dedup mode is "entryid"
// cannot take old events and is refused up front (ErrRedisEntryID).
package backfill
