// Package decoder turns pgoutput messages into events.
//
// It parses the pgoutput protocol (Begin, Relation, Insert, Message, Commit;
// everything else is skipped), keeps a relation cache that every Relation
// message replaces (so ALTER TABLE on the outbox needs no restart), decodes
// tuple columns by their type, and maps the outbox columns onto CloudEvents
// attributes. Transactional logical decoding messages with the configured
// prefix carry a whole CloudEvent as JSON and become events too, unless
// Config.MessagesOff (the YAML default) ignores them; a non-transactional
// message with the prefix is an *Error wrapping ErrNonTransactional, for the
// invalid-row policy, and never an event.
//
// Text arrives as the server stored it and is converted to UTF-8 from the
// database's server encoding (Config.ServerEncoding, SupportedEncodings):
// column values, relation and column names and message content alike. Data,
// headers and messages are checked against RFC 8259 and I-JSON (RFC 7493),
// source and dataschema against RFC 3986.
//
// Relations map to outbox tables by name, or, with a Catalog (UseCatalog), by
// OID: a renamed outbox or a partition of a partitioned one is still the
// configured table. The catalog is asked on Relation messages only, never per
// row.
//
// A row that cannot become a valid CloudEvent is reported as an *Error naming
// the table, the row id, the LSN, the column and what is wrong; so is a row of
// a published relation that is no outbox table (never skipped silently).
//
// A Decoder is not safe for concurrent use: one goroutine reads the stream.
package decoder
