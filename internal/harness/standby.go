package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// StandbyOptions configures StartStandby. The zero value is an
// asynchronous hot standby named "standby1" that, on PostgreSQL 17 and
// newer, synchronizes failover slots.
type StandbyOptions struct {
	// Name is the standby's application_name on the primary and the name
	// of its physical replication slot there. Default "standby1".
	Name string
	// Sync makes the primary wait for the standby at every commit
	// (synchronous_standby_names = Name), so a commit the client saw
	// survives the primary's death. Default off (asynchronous).
	Sync bool
	// NoSlotSync keeps PostgreSQL 17+ from synchronizing failover slots:
	// by default the standby runs with sync_replication_slots = on and the
	// primary with synchronized_standby_slots = Name.
	NoSlotSync bool
	// ExtraConf adds or overrides the standby's postgresql.conf settings.
	ExtraConf map[string]string
	// Port of the standby (127.0.0.1). Default: a free port.
	Port int
}

// StartStandby makes a streaming hot standby of pg, the primary, and
// starts it: like pg_basebackup -R -S it creates a physical replication
// slot Name on the primary, copies the data directory between
// pg_backup_start and pg_backup_stop (pg_start_backup/pg_stop_backup on
// PostgreSQL 14), writes backup_label, standby.signal, primary_conninfo,
// primary_slot_name and hot_standby_feedback = on. On PostgreSQL 17+ (unless
// opts.NoSlotSync) the standby runs with sync_replication_slots = on and the
// primary with synchronized_standby_slots = Name, so failover slots are kept
// on the standby and no logical walsender of a failover slot sends what the
// standby has not received. It blocks until the standby streams from the
// primary (and, with opts.Sync, is its synchronous standby). The standby
// uses the primary's binaries and options; Close it when done.
//
// The primary's settings (synchronous_standby_names,
// synchronized_standby_slots) and its physical slot outlive the standby: with
// Sync or slot sync, start the standby of a primary of the test's own, since
// a closed synchronous standby blocks every later commit there.

func (pg *Postgres) StartStandby(ctx context.Context, opts StandbyOptions) (*Postgres, error) {
	if opts.Name == "" {
		opts.Name = "standby1"
	}
	slotSync := pg.major >= 17 && !opts.NoSlotSync
	port := opts.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return nil, fmt.Errorf("standby: connect to primary: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)
		WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, opts.Name); err != nil {
		return nil, fmt.Errorf("standby: create physical slot %s on the primary: %w", opts.Name, err)
	}
	b, err := newBase("postgres", pg.cred)
	if err != nil {
		return nil, err
	}
	sb := &Postgres{base: b, opts: pg.opts, binDir: pg.binDir, dataDir: filepath.Join(b.dir, "data"), port: port, cred: pg.cred, major: pg.major}
	fail := func(err error) (*Postgres, error) {
		b.close()
		return nil, fmt.Errorf("standby: %w", err)
	}
	label, err := pg.baseBackup(ctx, conn, sb.dataDir)
	if err != nil {
		return fail(err)
	}
	if err := sb.writeFile("backup_label", label); err != nil {
		return fail(err)
	}
	if err := sb.writeFile("standby.signal", ""); err != nil {
		return fail(err)
	}
	conf := map[string]string{
		"port":                         itoa(port),
		"unix_socket_directories":      b.dir,
		"primary_conninfo":             fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres application_name=%s", pg.port, opts.Name),
		"primary_slot_name":            opts.Name,
		"hot_standby":                  "on",
		"hot_standby_feedback":         "on",
		"wal_receiver_status_interval": "1s",
	}
	if slotSync {
		conf["sync_replication_slots"] = "on"
	}
	maps.Copy(conf, opts.ExtraConf)
	if err := sb.appendConf(conf); err != nil {
		return fail(err)
	}
	if err := sb.Start(ctx); err != nil {
		return fail(err)
	}
	// Settings on the primary that name the standby.
	var set []string
	if opts.Sync {
		set = append(set, "ALTER SYSTEM SET synchronous_standby_names = "+quoteLiteral(pgx.Identifier{opts.Name}.Sanitize()))
	}
	if slotSync {
		set = append(set, "ALTER SYSTEM SET synchronized_standby_slots = "+quoteLiteral(opts.Name))
	}
	for _, sql := range set {
		if _, err := conn.Exec(ctx, sql); err != nil {
			sb.Close()
			return nil, fmt.Errorf("standby: %s: %w", sql, err)
		}
	}
	if len(set) > 0 {
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			sb.Close()
			return nil, fmt.Errorf("standby: reload the primary: %w", err)
		}
	}
	want := "async"
	if opts.Sync {
		want = "sync"
	}
	for deadline := time.Now().Add(pg.opts.StartTimeout); ; {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication
			WHERE application_name = $1 AND state = 'streaming' AND sync_state = $2`, opts.Name, want).Scan(&n)
		if err == nil && n > 0 {
			break
		}
		if err == nil && time.Now().After(deadline) {
			err = fmt.Errorf("not streaming as a %s standby after %v", want, pg.opts.StartTimeout)
		}
		if err != nil {
			sb.Close()
			return nil, fmt.Errorf("standby %s: %w\n--- %s (tail) ---\n%s", opts.Name, err, sb.logPath, sb.LogTail(30))
		}
		select {
		case <-ctx.Done():
			sb.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if opts.Sync {
		// A commit waits for a synchronous standby only once the
		// checkpointer has read the reloaded synchronous_standby_names
		// (it sets the shared flag commits look at); pg_stat_replication
		// shows "sync" as soon as the walsender has read it. A CHECKPOINT
		// returns after the checkpointer handled its pending reload. Seen
		// failing without it: a COMMIT with remote_apply returned before
		// the standby had the row.
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			sb.Close()
			return nil, fmt.Errorf("standby: checkpoint on the primary: %w", err)
		}
	}
	return sb, nil
}

// Promote turns a standby started by StartStandby into a primary
// (pg_promote) and blocks until it accepts writes (at most 60 s).
func (pg *Postgres) Promote(ctx context.Context) error {
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !ok {
		return fmt.Errorf("promote: not promoted within 60s\n--- %s (tail) ---\n%s", pg.logPath, pg.LogTail(30))
	}
	return nil
}

// InRecovery reports whether the server is a standby (pg_is_in_recovery).
func (pg *Postgres) InRecovery(ctx context.Context) (bool, error) {
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var r bool
	err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&r)
	return r, err
}

// baseBackup copies pg's data directory into dst between the start and
// the stop of a non-exclusive backup on conn, and returns the backup label.
func (pg *Postgres) baseBackup(ctx context.Context, conn *pgx.Conn, dst string) (string, error) {
	start, stop := "SELECT pg_backup_start('outbox-cdc harness', true)", "SELECT labelfile FROM pg_backup_stop(false)"
	if pg.major < 15 {
		start, stop = "SELECT pg_start_backup('outbox-cdc harness', true, false)", "SELECT labelfile FROM pg_stop_backup(false, false)"
	}
	if _, err := conn.Exec(ctx, start); err != nil {
		return "", fmt.Errorf("start backup: %w", err)
	}
	copyErr := copyDataDir(pg.dataDir, dst, pg.cred)
	var label string
	if err := conn.QueryRow(ctx, stop).Scan(&label); err != nil {
		return "", fmt.Errorf("stop backup: %w", err)
	}
	if copyErr != nil {
		return "", fmt.Errorf("copy %s: %w", pg.dataDir, copyErr)
	}
	return label, nil
}

// Files and directories pg_basebackup leaves out of a base backup; the
// directories are kept, empty.
var (
	backupSkipFiles = []string{"postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "standby.signal", "recovery.signal", "postgresql.auto.conf.tmp"}
	backupEmptyDirs = []string{"pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans"}
)

// copyDataDir copies a running server's data directory, leaving out what a
// base backup leaves out. Files that vanish while it copies are skipped (the
// WAL replayed from the backup's start recreates what matters).
// With cred, the copies belong to its user.
func copyDataDir(src, dst string, cred *syscall.Credential) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		if !d.IsDir() && (slices.Contains(backupSkipFiles, rel) || (slices.Contains(backupEmptyDirs, top) && rel != top)) {
			return nil
		}
		if d.IsDir() && slices.Contains(backupEmptyDirs, top) && rel != top {
			if rel != filepath.Join("pg_wal", "archive_status") && rel != filepath.Join("pg_wal", "summaries") {
				return filepath.SkipDir
			}
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		} else {
			if !info.Mode().IsRegular() {
				return nil
			}
			if err := copyFile(path, target); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
		}
		if cred != nil {
			if err := os.Lchown(target, int(cred.Uid), int(cred.Gid)); err != nil {
				return err
			}
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeFile writes name into the data directory, owned by the server's OS
// user.
func (pg *Postgres) writeFile(name, body string) error {
	path := filepath.Join(pg.dataDir, name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return err
	}
	if pg.cred != nil {
		return os.Chown(path, int(pg.cred.Uid), int(pg.cred.Gid))
	}
	return nil
}

// WaitSlotSynced blocks until the standby pg holds logical slot as a
// synchronized failover slot (PostgreSQL 17+: synced and not temporary)
// whose confirmed_flush_lsn is at least lsn, and returns that position. It
// nudges the servers meanwhile: pg_log_standby_snapshot on primary (the
// standby takes a slot only once the primary's catalog horizon has passed
// its own, which otherwise waits for the next running-transactions record,
// up to 15 s) and a configuration reload on the standby, which wakes the
// slot sync worker from its back-off (up to 30 s). Someone must be
// consuming the slot on the primary for its position to move.
func (pg *Postgres) WaitSlotSynced(ctx context.Context, primary *Postgres, slot string, lsn uint64, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		if err := primary.Exec(ctx, "postgres", "SELECT pg_log_standby_snapshot()"); err != nil && ctx.Err() == nil {
			return 0, fmt.Errorf("wait for slot %s: primary: %w", slot, err)
		}
		if err := pg.Exec(ctx, "postgres", "SELECT pg_reload_conf()"); err != nil && ctx.Err() == nil {
			return 0, fmt.Errorf("wait for slot %s: standby: %w", slot, err)
		}
		conn, err := pg.Connect(ctx, "postgres")
		if err == nil {
			var pos *string
			err = conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots
				WHERE slot_name = $1 AND synced AND NOT temporary`, slot).Scan(&pos)
			conn.Close(context.Background())
			if err == nil && pos != nil {
				last = *pos
				if p, perr := parseLSN(*pos); perr == nil && p >= lsn {
					return p, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("slot %s not synchronized to the standby at %X within %v (standby's copy: %q)\n--- %s (tail) ---\n%s",
				slot, lsn, timeout, last, pg.logPath, pg.LogTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// parseLSN parses "XXX/XXX".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	var h, l uint64
	if _, err := fmt.Sscanf(hi+" "+lo, "%x %x", &h, &l); err != nil {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	return h<<32 | l, nil
}
