package sink

import (
	"context"
	"errors"
)

// Permanent reports that retrying cannot deliver the event: always true.
// It makes a *PermanentError satisfy IsPermanent.
func (e *PermanentError) Permanent() bool { return true }

// IsPermanent reports whether retrying cannot help with err: errors.As finds
// in its chain an error with a Permanent() bool method that returns true
// (the pattern of pgconn.SafeToRetry). context.Canceled and
// context.DeadlineExceeded are never permanent.
func IsPermanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
