// Package redis implements the Redis Streams sink: every event becomes one
// stream entry, added with XADD, acknowledged once Redis replied that it
// holds it.
//
// # Streams
//
// Config.Stream names the stream per event with a template
// ([sink.ParseTemplate]), by default "outbox:{{.AggregateType}}". With
// Config.MaxLen > 0 every XADD trims its stream with "MAXLEN ~ MaxLen".
// Streams are created by their first XADD unless Config.NoMkStream is set.
//
// # Entry layout (content modes)
//
// The binary content mode (the default) writes one field per CloudEvents
// attribute, in this fixed order, leaving out optional attributes that are
// empty:
//
//	specversion      "1.0"                         always
//	id               the event id                  always
//	source           the source URI-reference      always
//	type             the event type                always
//	subject                                        if set
//	time             RFC 3339, UTC, microseconds   if set
//	datacontenttype  a media type                  if set
//	dataschema       a URI                         if set
//	<extension>      one field per extension, named as the extension, in
//	                 ascending name order (partitionkey, pglsn, ...)
//	data             the data bytes                unless the event has none
//
// Field values are strings except data, which holds the payload bytes
// exactly: JSON as its JSON text, text as its UTF-8 bytes, and binary data
// (a bytea column) as the raw bytes, not base64. A consumer tells binary
// from text by datacontenttype. No extension can be named like one of the
// fields above: such an event is refused as a permanent error.
//
// A consumer therefore needs no code of ours: read the entry's field/value
// pairs (XRANGE, XREAD, XREADGROUP all return them in this order), take the
// known attribute names as attributes, "data" as the data, and every other
// field as an extension attribute with a string value.
//
// The structured layout (Config.ContentMode "structured") writes a single field
// "event" holding the event in the CloudEvents JSON format (media type
// application/cloudevents+json): data as JSON, text as a JSON string, binary
// as data_base64.
//
// # Delivery, order and duplicates
//
// The sink is the Redis adapter of the shared delivery engine
// (internal/delivery), which owns the in-flight window (Config.MaxInFlight),
// the order of acknowledgements, the sticky failure and the resends.
// Publish encodes the events and queues them; the engine's goroutine sends
// them in order, one round trip at a time, each carrying up to
// Config.BatchSize events. Events are acknowledged only after Redis replied
// for them, in order. When a round trip fails transiently (connection
// refused or lost, timeout, LOADING, BUSY, TRYAGAIN, CLUSTERDOWN,
// MASTERDOWN, READONLY, NOREPLICAS, MISCONF, OOM, NOAUTH/WRONGPASS after a
// reconnect), the engine waits (Config.Retry) and sends again the first
// unacknowledged event and everything after it, forever, logging one line
// when deliveries start failing and one when they work again. Out-of-memory
// is retried rather than reported: an operator can free memory or raise
// maxmemory, and the events are not at fault.
//
// A round trip is atomic against transient refusals: in the "entryid",
// "idmp" and "none" modes its XADDs form one MULTI/EXEC transaction, which
// Redis discards whole if it refuses any command when queuing it (out of
// memory, loading, busy, not permitted); in "guard" mode the round is one
// script run that stops at the first event that fails. So no event is ever
// stored ahead of an earlier one of the same Publish order, and per-stream
// (hence per-key) order holds across retries.
//
// A resend can still meet events Redis already stored (the reply was lost
// with the connection, or outbox-cdc restarted and replayed from the
// replication slot). Config.Dedup chooses how they are kept out; every mode
// keys an event on its CloudEvents identity, source and id
// ([event.Event.DedupKey]), never on the id alone:
//
//   - "entryid": each entry's id is "<commit LSN>-<seq>" (event.CommitLSN
//     and event.Seq, decimal), given explicitly to XADD. Ids grow in commit
//     order, so Redis refuses a resent event ("equal or smaller than the
//     target stream top item"); the sink then reads that entry id back and
//     acknowledges the event as a duplicate if the entry holds the same
//     event source and id, or if the id lies before the first entry of a
//     stream that has lost entries to trimming. Anything else (another event
//     under that entry id, or a stream that is past the id without ever
//     having held it) is a permanent IDCONFLICT error, never a silent skip.
//     An entry id is a commit position, so an event from another commit is
//     never taken for a duplicate in this mode. This costs nothing
//     beyond a plain XADD and no memory, for any length of outage. It
//     requires that the sink is the only writer of its streams, and that LSNs
//     never go back: after restoring the database to an earlier point, write
//     to new streams (or delete the old ones); with trimming, a restored
//     database's events below the old first entry would otherwise be taken
//     as trimmed duplicates. Entry ids are then WAL positions, not times:
//     XRANGE by time and MINID trimming by time do not apply; the time field
//     carries the event time, and the id lets consumers order and dedupe
//     by LSN.
//   - "guard": before its XADD each event sets a guard key, whose value is
//     the event's commit LSN ("0/16B3748"), with SET NX PX guard_ttl in one
//     Lua script (EVALSHA, loaded at startup and again after NOSCRIPT); the
//     XADD runs only when the guard is new, and a failed XADD deletes its
//     guard again, so a guard never exists without its entry. An existing
//     guard means a duplicate; the script returns the guard's value and the
//     event is acknowledged. The same LSN is a resend (Observer.Duplicate);
//     another LSN is a different event that reused the identity and was not
//     stored: logged (source, id, both LSNs) and reported to
//     sink.OtherCommitObserver (see [sink.Options.Duplicate]). A guard
//     without an LSN (set by an earlier version) or one the ACL user may not
//     GET (logged once) counts as a resend. Entry ids stay time-based ("*")
//     and other writers may share the stream. The guard key is
//     "{<stream>}:outbox-cdc-guard:<dedup key>", so that it hashes to the
//     stream's Redis Cluster slot; a stream name with its own hash tag
//     "{tag}" keeps it and is length-prefixed:
//     "{tag}:outbox-cdc-guard-in:<len(stream)>:<stream>:<dedup key>"; any
//     other stream name with a "}" gets "{}" in place of the tag (such a name
//     is not cluster-safe; Redis Cluster would refuse it with CROSSSLOT, a
//     permanent error). No two (stream, source, id) share a guard. Guards
//     expire after Config.GuardTTL (default 24h: a resend after a day-long
//     outage of outbox-cdc is still recognised); they cost about 190 bytes
//     of Redis memory per event for that long (with a 13-byte source; the
//     key grows with the source and id), and the script about three times
//     the Redis CPU of a plain XADD.
//   - "idmp": XADD IDMP <producer id> <dedup key> (Redis 8.6+): Redis keeps
//     recent idempotent ids per producer and stream and answers a resend
//     with the existing entry's id. Redis does not say whether an XADD was a
//     duplicate, so Observer.Duplicate is not called, and an event from
//     another commit under a stored identity is dropped without a word: use
//     "guard" where that must be seen. Redis keeps at most
//     stream-idmp-maxsize ids (XCFGSET IDMP-MAXSIZE per stream) for at most
//     stream-idmp-duration seconds: raise both so they cover Config.MaxInFlight
//     events and the longest outage. The sink does not call XCFGSET itself,
//     because XCFGSET clears the stream's idempotency map.
//   - "none": plain XADD; a resend may add an event twice.
//   - "auto" (default): "idmp" on Redis 8.6 or newer whose
//     stream-idmp-maxsize is at least Config.MaxInFlight, else "entryid".
//     Upgrading Redis can thus switch the mode: set Dedup explicitly where
//     that matters.
//
// # Permanent errors
//
// WRONGTYPE (the stream key holds another type), NOPERM (the ACL user may
// not write that key), NOSTREAM (NoMkStream and the stream is missing),
// IDCONFLICT, CROSSSLOT and other ERR replies stop the sink: Publish and
// Flush return a *sink.PermanentError naming the event, whose Err unwraps
// to a *ServerError with the reply's code (ServerError.Permanent says which
// replies are permanent, for sink.IsPermanent). Neither that event nor any
// after it is acknowledged. An event that cannot be encoded is refused by
// Publish with a *sink.PermanentError, without taking it or the events
// after it; the sink stays usable.
//
// # Connection and permissions
//
// New connects (Config.ConnectTimeout) and fails with a message naming the
// sink and the address (never the password) when the server is unreachable,
// rejects the credentials (WRONGPASS, NOAUTH), when dedup "idmp" is asked of
// a server older than 8.6, when a static stream name holds another type, or
// is missing with NoMkStream. The ACL user needs ping, info (optional: for
// the version), type, multi, exec, xadd, xrange and xinfo on the stream keys;
// "guard" mode also needs script|load, evalsha, set, get and del on the guard
// keys (without get, duplicates from another commit count as resends). Redis Cluster and Sentinel are not supported by this version; the
// keys are laid out for Cluster already.
//
// go-redis logs through a process-wide logger; SetClientLogger routes it.
package redis
