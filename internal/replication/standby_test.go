package replication

import (
	"errors"
	"strings"
	"testing"
)

func TestStandbyErrorNamesVersionAndFix(t *testing.T) {
	msg := (&StandbyError{Addr: "127.0.0.1:5433", Version: 17}).Error()
	for _, w := range []string{"127.0.0.1:5433 is a standby", "PostgreSQL 17", "target_session_attrs=read-write", "docs/postgres-versions.md"} {
		if !strings.Contains(msg, w) {
			t.Errorf("%q does not say %q", msg, w)
		}
	}
	var f *FatalError
	if errors.As(error(&StandbyError{}), &f) {
		t.Error("a StandbyError is retried: reconnecting finds the primary after a promotion")
	}
}
