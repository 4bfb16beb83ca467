package decoder

import "fmt"

// Error is a row or message that cannot become a valid CloudEvent. The stream
// stops at it (or, under a dead-letter policy, it is stored with Raw); the
// slot does not move past it.
type Error struct {
	Table  string // schema.table, or "message <prefix>" for a logical message
	RowID  string // the id column's text, or "" when it is NULL
	LSN    uint64 // commit LSN of the row's transaction; 0 for a row read from the table
	Column string // the offending column or attribute, if one
	Reason string
	// Raw is the row as column name → text (nil for NULL), or the message
	// content under the key "content", so nothing is lost.
	Raw map[string]*string
}

func (e *Error) Error() string {
	id := e.RowID
	if id == "" {
		id = "(no id)"
	}
	s := fmt.Sprintf("decoder: %s row %s in transaction at LSN %s", e.Table, id, FormatLSN(e.LSN))
	if e.LSN == 0 {
		s = fmt.Sprintf("decoder: %s row %s (read from the table)", e.Table, id)
	}
	if e.Column != "" {
		s += fmt.Sprintf(": column %q", e.Column)
	}
	return s + ": " + e.Reason
}
