package redis

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	SetClientLogger(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
