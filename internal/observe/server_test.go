package observe

import (
	"context"
	"strings"
	"testing"
	"time"

	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:9187":   true,
		"127.1.2.3:9187":   true,
		"[::1]:9187":       true,
		"localhost:9187":   true,
		"LocalHost:9187":   true,
		":9187":            false,
		"0.0.0.0:9187":     false,
		"[::]:9187":        false,
		"10.1.2.3:9187":    false,
		"192.0.2.1:9187":   false,
		"[2001:db8::1]:80": false,
		"nonsense":         false,
	} {
		if got := IsLoopback(t.Context(), addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Issue 9: /status shows why the slot cannot be read without any piece of a
// password that pgx cannot parse.
func TestStatusSlotErrorHidesPassword(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"postgres://app:Qzx1@Kvw2:Jpy3@127.0.0.1:1/app",
		"postgres://app:Qzx1@Kvw2:Jpy3%Hmb4 Gtn5@127.0.0.1:1/app",
		`host=127.0.0.1 port=x1 password='Qzx1@Kvw2:Jpy3%Hmb4 Gtn5\'Fqc6'`,
	} {
		s := NewServer(Config{Addr: "-", SlotPoll: time.Hour}, NewMetrics("test", "outbox_cdc"), pgc.Config{URL: url}, "outbox_cdc", nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for s.Status().SlotError == "" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		msg := s.Status().SlotError
		if msg == "" {
			t.Fatalf("%s: no slot error", url)
		}
		for _, piece := range []string{"Qzx1", "Kvw2", "Jpy3", "Hmb4", "Gtn5", "Fqc6"} {
			if strings.Contains(msg, piece) {
				t.Errorf("/status slot_error %q shows %q of the password", msg, piece)
				break
			}
		}
	}
}
