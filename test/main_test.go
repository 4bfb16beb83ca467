package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

var (
	pg     *harness.Postgres
	pgErr  error
	binary string // the outbox-cdc binary under test
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "outbox-cdc-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "outbox-cdc")
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, "github.com/outbox-cdc/outbox-cdc/cmd/outbox-cdc")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building outbox-cdc:", err)
		return 1
	}
	pg, pgErr = harness.StartPostgres(ctx, harness.PostgresOptions{
		ExtraConf: map[string]string{"wal_sender_timeout": "20s", "track_commit_timestamp": "on"},
	})
	if pgErr != nil && (harness.Require("postgres") || !errors.Is(pgErr, harness.ErrNotInstalled)) {
		fmt.Fprintln(os.Stderr, "starting postgres:", pgErr)
		return 1
	}
	if pg != nil {
		defer pg.Close()
	}
	defer closeShared()
	return m.Run()
}

// needPostgres skips or fails the test when the cluster is not there.
func needPostgres(t *testing.T) *harness.Postgres {
	t.Helper()
	if pg == nil {
		harness.SkipIfNotInstalled(t, "postgres", pgErr)
		t.Fatalf("postgres: %v", pgErr)
	}
	return pg
}
