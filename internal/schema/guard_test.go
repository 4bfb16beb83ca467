package schema

import (
	"strings"
	"testing"
)

// The guard's SQL uses the setting and the message prefix the Go side names.
func TestGuardSQLNames(t *testing.T) {
	for _, w := range []string{"'" + AllowDDLSetting + "'", "'" + DDLMessagePrefix + "'", GuardTriggerDDL, GuardTriggerDrop, "SECURITY DEFINER"} {
		if !strings.Contains(guardSQL, w) {
			t.Errorf("guard.sql does not contain %s", w)
		}
	}
}
