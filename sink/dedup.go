package sink

import (
	"github.com/outbox-cdc/outbox-cdc/event"
)

// LSNExtension is the extension attribute that carries an event's commit LSN
// in pg_lsn form ("0/16B3748"); sinks read it back from stored copies.
const LSNExtension = "pglsn"

// OtherCommitObserver is an optional extension of Observer. When the
// observer implements it, a duplicate that is not a resend is reported here
// instead of to Observer.Duplicate. Like every Observer method it must be
// cheap, must not block and must be safe for concurrent use.
type OtherCommitObserver interface {
	// DuplicateOtherCommit is called when the destination dropped e as a
	// duplicate of an event it holds under the same source and id whose
	// commit LSN, storedLSN, is not e's: another event reused the identity.
	DuplicateOtherCommit(sink string, e *event.Event, storedLSN uint64)
}

// Duplicate reports that the destination dropped e as a duplicate of an
// event it holds with the same source and id, committed at storedLSN (0 when
// the sink cannot tell). With the same commit LSN as e's, or an unknown one,
// e is a resend: Observer.Duplicate is called. Otherwise e is a different
// event from another commit: one warning is logged naming the sink, source,
// id and both LSNs, and the observer's DuplicateOtherCommit is called (or
// Duplicate, if it does not implement OtherCommitObserver). Sinks call
// Duplicate before they acknowledge e. Safe for concurrent use.
func (o Options) Duplicate(e *event.Event, storedLSN uint64) {
	o = o.WithDefaults()
	lsn := EventLSN(e)
	if storedLSN == 0 || lsn == 0 || storedLSN == lsn {
		o.Observer.Duplicate(o.Name, e)
		return
	}
	o.Logger.Warn("duplicate from another commit: the destination already holds an event with this source and id "+
		"from another transaction, so this event was not stored; give different events different ids (or sources)",
		"sink", o.Name, "source", e.Source, "id", e.ID,
		"lsn", event.FormatLSN(lsn), "stored_lsn", event.FormatLSN(storedLSN))
	if oc, ok := o.Observer.(OtherCommitObserver); ok {
		oc.DuplicateOtherCommit(o.Name, e, storedLSN)
		return
	}
	o.Observer.Duplicate(o.Name, e)
}

// EventLSN returns e's commit LSN: e.CommitLSN, or when that is zero the
// LSNExtension attribute, or 0 when neither is set.
func EventLSN(e *event.Event) uint64 {
	if e.CommitLSN != 0 {
		return e.CommitLSN
	}
	if v, ok := e.Extension(LSNExtension); ok {
		if lsn, err := event.ParseLSN(v); err == nil {
			return lsn
		}
	}
	return 0
}
