package harness_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// Every supported major starts with the harness's initdb/postgres start (as
// the "postgres" OS user under root) and decodes with pgoutput.
func TestPostgresVersions(t *testing.T) {
	for _, v := range harness.SupportedPGVersions {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pg, err := harness.StartPostgres(ctx, harness.PostgresOptions{Version: v})
			harness.SkipIfNotInstalled(t, "postgres", err)
			cleanup(t, pg)
			if pg.Version() != v {
				t.Fatalf("Version() = %d, want %d", pg.Version(), v)
			}
			conn, err := pg.Connect(ctx, "postgres")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var num int
			if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
				t.Fatal(err)
			}
			if num/10000 != v {
				t.Fatalf("server_version_num %d on a PostgreSQL %d bin dir %s", num, v, pg.BinDir())
			}
			for _, sql := range []string{
				"CREATE TABLE t (id int primary key)",
				"CREATE PUBLICATION p FOR TABLE t",
				"SELECT pg_create_logical_replication_slot('s', 'pgoutput')",
				"INSERT INTO t VALUES (1)",
			} {
				if _, err := conn.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_logical_slot_get_binary_changes('s', NULL, NULL,
				'proto_version', '1', 'publication_names', 'p')`).Scan(&n); err != nil {
				t.Fatalf("pgoutput on PostgreSQL %d: %v", v, err)
			}
			if n != 4 { // Begin, Relation, Insert, Commit
				t.Fatalf("pgoutput sent %d messages for one insert, want 4", n)
			}
		})
	}
}

// A standby started by StartStandby streams from its primary, keeps a
// failover slot synchronized (17+) and can be promoted.
func TestStandby(t *testing.T) {
	ctx := context.Background()
	pg, err := harness.StartPostgres(ctx, harness.PostgresOptions{})
	harness.SkipIfNotInstalled(t, "postgres", err)
	cleanup(t, pg)
	if err := pg.Exec(ctx, "postgres", "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1); CREATE PUBLICATION p FOR TABLE t"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sb, err := pg.StartStandby(ctx, harness.StandbyOptions{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, sb)
	t.Logf("PostgreSQL %d standby started in %v", pg.Version(), time.Since(start).Round(time.Millisecond))
	if pg.Version() >= 17 {
		if err := pg.Exec(ctx, "postgres", "SELECT pg_create_logical_replication_slot('fs', 'pgoutput', false, false, true)"); err != nil {
			t.Fatal(err)
		}
	}
	// synchronous_commit = on returns once the standby has flushed the
	// commit, before it has replayed it; remote_apply waits for that too,
	// so the row is visible there when COMMIT returns.
	if err := pg.Exec(ctx, "postgres", "BEGIN; SET LOCAL synchronous_commit = remote_apply; INSERT INTO t VALUES (2); COMMIT"); err != nil {
		t.Fatal(err)
	}
	conn, err := sb.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t WHERE id <= 2").Scan(&n); err != nil || n != 2 {
		t.Fatalf("standby has %d rows (%v), want 2: a synchronous standby has every commit", n, err)
	}
	if pg.Version() >= 17 {
		// A consumer of the slot on the primary, which the standby's copy
		// follows.
		cctx, stop := context.WithCancel(ctx)
		consumed := make(chan struct{})
		go func() {
			defer close(consumed)
			for cctx.Err() == nil {
				pg.Exec(cctx, "postgres", "SELECT pg_replication_slot_advance('fs', pg_current_wal_lsn())")
				time.Sleep(50 * time.Millisecond)
			}
		}()
		_, err := sb.WaitSlotSynced(ctx, pg, "fs", 0, 60*time.Second)
		stop()
		<-consumed
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("standby ready after %v", time.Since(start).Round(time.Millisecond))
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := sb.InRecovery(ctx); err != nil || r {
		t.Fatalf("in recovery after Promote: %v %v", r, err)
	}
	if err := sb.Exec(ctx, "postgres", "INSERT INTO t SELECT max(id) + 1 FROM t"); err != nil {
		t.Fatal(err)
	}
	if pg.Version() >= 17 {
		// The synchronized slot survives the promotion and decodes.
		if err := sb.Exec(ctx, "postgres", "SELECT count(*) FROM pg_logical_slot_get_binary_changes('fs', NULL, NULL, 'proto_version', '1', 'publication_names', 'p')"); err != nil {
			t.Fatalf("failover slot after promotion: %v", err)
		}
	}
}
