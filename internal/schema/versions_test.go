package schema

import (
	"strings"
	"testing"
)

func TestWantFailover(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		major int
		want  bool
		err   string
	}{
		{"", 16, false, ""},
		{"", 17, true, ""},
		{FailoverAuto, 18, true, ""},
		{FailoverOff, 18, false, ""},
		{FailoverOn, 17, true, ""},
		{FailoverOn, 14, false, "PostgreSQL 14 has no failover slots (PostgreSQL 17 and newer have)"},
		{"maybe", 17, false, `postgres.failover_slot "maybe": want auto, on or off`},
	} {
		got, err := wantFailover(tc.mode, tc.major)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("wantFailover(%q, %d) error %v, want one saying %q", tc.mode, tc.major, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("wantFailover(%q, %d) = %v, %v; want %v", tc.mode, tc.major, got, err, tc.want)
		}
	}
}
