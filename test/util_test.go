package test

import (
	"context"
	"os"
	"os/exec"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

func execCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

func freePort() (int, error) { return harness.FreePort() }

func startReplicaLevelPostgres(ctx context.Context) (*harness.Postgres, error) {
	return harness.StartPostgres(ctx, harness.PostgresOptions{WALLevel: "replica"})
}

func writeFile(t interface {
	Helper()
	Fatal(...any)
}, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t interface {
	Helper()
	Fatal(...any)
}, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
