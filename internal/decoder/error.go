package decoder

import (
	"errors"
	"fmt"
)

// Error is a row or message that cannot become a valid CloudEvent. The stream
// stops at it (or, under a dead-letter policy, it is stored with Raw); the
// slot does not move past it.
type Error struct {
	Table  string // schema.table, or "message <prefix>" for a logical message
	RowID  string // the id column's text, or "" when it is NULL
	LSN    uint64 // commit LSN of the row's transaction (a non-transactional message's own LSN); 0 for a row read from the table
	Column string // the offending column or attribute, if one
	Reason string
	// Raw is the row as column name → text (nil for NULL), or the message
	// content under the key "content", so nothing is lost.
	Raw map[string]*string
	// Err is the kind of error, for errors.Is, when there is one
	// (ErrNonTransactional); nil otherwise.
	Err error
	// Pos is the input's position within its transaction, from 0, counting
	// every outbox row and message, good or bad. With LSN it identifies the
	// input: decoding the transaction again gives the same pair.
	Pos int
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports true: decoding the row again gives the same error (see
// sink.IsPermanent). The invalid-row policy decides what happens to it.
func (e *Error) Permanent() bool { return true }

func (e *Error) Error() string {
	id := e.RowID
	if id == "" {
		id = "(no id)"
	}
	where := "in transaction at"
	if errors.Is(e.Err, ErrNonTransactional) {
		where = "at" // it has no transaction: the message's own LSN
	}
	s := fmt.Sprintf("decoder: %s row %s %s LSN %s", e.Table, id, where, FormatLSN(e.LSN))
	if e.LSN == 0 {
		s = fmt.Sprintf("decoder: %s row %s (read from the table)", e.Table, id)
	}
	if e.Column != "" {
		s += fmt.Sprintf(": column %q", e.Column)
	}
	return s + ": " + e.Reason
}
