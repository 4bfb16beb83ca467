package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Consumer takes the replication stream. All methods are called from the
// Stream's goroutine.
type Consumer interface {
	// WAL handles one pgoutput message that starts at walStart. The data is
	// only valid during the call. A permanent error (sink.IsPermanent: a row
	// that cannot become an event, an outbox table that left the
	// publication) stops the stream for good; any other error (a catalog
	// lookup that could not reach the server) makes the stream reconnect,
	// and the server sends the message again.
	WAL(walStart uint64, data []byte) error
	// Keepalive reports the server's WAL end from a keepalive message.
	Keepalive(walEnd uint64)
	// Safe returns the position every routed sink has acknowledged.
	Safe() uint64
	// Wait returns nil when the consumer can take more, or a channel that is
	// signalled when it may be able to.
	Wait() <-chan struct{}
	// Drain is called when the stream stops (shutdown or connection loss): it
	// forgets any partly received transaction and waits until what is in
	// flight is acknowledged or ctx is done.
	Drain(ctx context.Context) error
}

// State is the stream's state.
type State int32

// States.
const (
	StateConnecting State = iota
	StateStandby
	StateStreaming
	StateReconnecting
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateStandby:
		return "standby"
	case StateStreaming:
		return "streaming"
	case StateReconnecting:
		return "reconnecting"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// Hooks observe the stream; every field is optional and must not block.
type Hooks struct {
	// State is called on every state change.
	State func(State)
	// Reconnect is called when the stream was lost and will reconnect.
	Reconnect func(err error)
	// Status is called after each standby status update was sent.
	Status func(flushed uint64)
	// WindowFull is called with the time the reader waited on a full window.
	WindowFull func(time.Duration)
}

// FatalError is an error that reconnecting cannot fix: a bad row, a missing
// slot, missing privileges. Run returns it.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Permanent reports true (see sink.IsPermanent).
func (e *FatalError) Permanent() bool { return true }

// Stream owns one replication connection at a time.
type Stream struct {
	cfg    Config
	c      Consumer
	logger *slog.Logger
	hooks  Hooks
	state  atomic.Int32
	sent   atomic.Uint64 // last flushed position reported
	tick   atomic.Int64  // unix nanoseconds of the loop's last turn
	stopAt atomic.Int64  // unix nanoseconds when Run's context was done; 0 before
	holder atomic.Pointer[Holder]
}

// Holder returns the process that holds the slot while the stream waits
// for it (StateStandby), or nil. Safe for concurrent use.
func (s *Stream) Holder() *Holder { return s.holder.Load() }

// LastActivity returns when the stream's loop last turned: a watchdog sees a
// stuck loop by this not moving. Safe for concurrent use.
func (s *Stream) LastActivity() time.Time { return time.Unix(0, s.tick.Load()) }

func (s *Stream) turn(now time.Time) { s.tick.Store(now.UnixNano()) }

// New returns a Stream; logger may be nil. Run starts it.
func New(cfg Config, c Consumer, logger *slog.Logger, hooks Hooks) (*Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Stream{cfg: cfg.withDefaults(), c: c, logger: logger, hooks: hooks}, nil
}

// State returns the current state. Safe for concurrent use.
func (s *Stream) State() State { return State(s.state.Load()) }

// Reported returns the last flushed position sent to the server. Safe for
// concurrent use.
func (s *Stream) Reported() uint64 { return s.sent.Load() }

func (s *Stream) setState(st State) {
	if State(s.state.Swap(int32(st))) != st && s.hooks.State != nil {
		s.hooks.State(st)
	}
}

// Run streams until ctx is done, then stops reading, drains what is in flight
// (until DrainTimeout after ctx was done), reports the final position and
// returns nil. It blocks. It returns a *FatalError for what reconnecting
// cannot fix.
func (s *Stream) Run(ctx context.Context) error {
	defer s.setState(StateStopped)
	s.turn(time.Now())
	s.stopAt.Store(0)
	defer context.AfterFunc(ctx, func() { s.stopAt.CompareAndSwap(0, time.Now().UnixNano()) })()
	for attempt := 1; ; attempt++ {
		streamed, err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if sink.IsPermanent(err) {
			return err
		}
		if streamed {
			attempt = 1
		}
		s.setState(StateReconnecting)
		s.logger.Warn("replication connection lost; reconnecting", "err", err, "attempt", attempt)
		if s.hooks.Reconnect != nil {
			s.hooks.Reconnect(err)
		}
		if err := s.cfg.Retry.Sleep(ctx, attempt); err != nil {
			return nil
		}
		s.turn(time.Now())
	}
}

// session runs one connection. streamed tells whether streaming had begun.
func (s *Stream) session(ctx context.Context) (streamed bool, err error) {
	s.setState(StateConnecting)
	conn, err := s.connect(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
		conn.Close(cctx)
		cancel()
	}()

	start, err := s.waitForSlot(ctx, conn)
	if err != nil || ctx.Err() != nil {
		return false, err
	}
	if err := s.start(ctx, conn, start); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // object_in_use: lost a race for the slot
			return false, err
		}
		return false, s.classify(err, start)
	}
	s.setState(StateStreaming)
	s.logger.Info("streaming", "slot", s.cfg.Slot, "from", pglogrepl.LSN(start).String())
	err = s.stream(ctx, conn, start)
	// Stop reading; drain what is in flight, report, close. At shutdown
	// the drain ends DrainTimeout after the stop was asked for, however long
	// the stream took to notice.
	dctx, cancel := context.WithDeadline(context.Background(), s.drainDeadline(ctx))
	derr := s.c.Drain(dctx)
	cancel()
	if derr != nil && ctx.Err() == nil { // at shutdown the caller says what is left
		s.logger.Warn("stopped with events still in flight; they will be sent again", "err", derr)
	}
	if conn.IsClosed() {
		return true, err
	}
	if serr := s.sendStatus(conn, start, false); serr != nil && err == nil {
		err = serr
	}
	return true, err
}

// drainDeadline is when a drain starting now must end: DrainTimeout after
// the stop was asked for, or from now when the connection was lost.
func (s *Stream) drainDeadline(ctx context.Context) time.Time {
	if ctx.Err() != nil {
		s.stopAt.CompareAndSwap(0, time.Now().UnixNano())
	}
	if at := s.stopAt.Load(); at != 0 {
		return time.Unix(0, at).Add(s.cfg.DrainTimeout)
	}
	return time.Now().Add(s.cfg.DrainTimeout)
}

func (s *Stream) connect(ctx context.Context) (*pgconn.PgConn, error) {
	pg := pgc.Config{URL: s.cfg.URL, ConnectTimeout: s.cfg.ConnectTimeout}
	// Every byte as the server stored it: with client_encoding SQL_ASCII
	// PostgreSQL neither converts nor checks. The decoder converts from the
	// server encoding, tuple text and logical messages alike (a walsender
	// converts only tuple text, and stops the stream for good at a value it
	// cannot convert).
	conn, err := pg.Replication(ctx, map[string]string{"client_encoding": "SQL_ASCII"})
	if err != nil {
		if errors.As(err, new(*pgconn.ParseConfigError)) {
			return nil, &FatalError{err}
		}
		return nil, classify(err)
	}
	return conn, nil
}

type slotInfo struct {
	exists      bool
	active      bool
	holder      *Holder // the process streaming it, when active
	confirmed   uint64
	plugin      string
	invalidated string    // why the server invalidated it, or ""
	inactive    time.Time // inactive_since (PostgreSQL 17+)
	recovery    bool      // the server is a standby
}

// slotSQL reads the slot and the process holding it. Columns that only
// newer servers have are read through to_jsonb so that one query serves
// every version.
const slotSQL = `SELECT s.plugin, s.active, coalesce(s.active_pid, 0), coalesce(s.confirmed_flush_lsn::text, '0/0'),
  coalesce(s.wal_status, ''), coalesce(to_jsonb(s)->>'invalidation_reason', ''), coalesce(to_jsonb(s)->>'conflicting', ''),
  coalesce(to_jsonb(s)->>'inactive_since', ''),
  coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''), coalesce(a.client_port, 0), coalesce(a.usename::text, ''), coalesce(a.backend_type, ''),
  pg_is_in_recovery()
FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
WHERE s.slot_name = '%s' AND s.database = current_database()`

func (s *Stream) slot(ctx context.Context, conn *pgconn.PgConn) (slotInfo, error) {
	res, err := conn.Exec(ctx, fmt.Sprintf(slotSQL, s.cfg.Slot)).ReadAll()
	if err != nil {
		return slotInfo{}, err
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return slotInfo{}, nil
	}
	row := res[0].Rows[0]
	col := func(i int) string { return string(row[i]) }
	lsn, err := pglogrepl.ParseLSN(col(3))
	if err != nil {
		return slotInfo{}, err
	}
	info := slotInfo{exists: true, plugin: col(0), active: col(1) == "t", confirmed: uint64(lsn),
		invalidated: InvalidationCause(col(4), col(5), col(6))}
	info.recovery = col(13) == "t"
	if t, err := time.Parse(time.RFC3339Nano, col(7)); err == nil {
		info.inactive = t
	}
	if info.active {
		pid, _ := strconv.Atoi(col(2))
		port, _ := strconv.Atoi(col(10))
		info.holder = &Holder{PID: pid, ApplicationName: col(8), ClientAddr: col(9), ClientPort: port, User: col(11), BackendType: col(12)}
	}
	return info, nil
}

// waitForSlot returns the slot's confirmed position once the slot is free,
// waiting as a hot standby while another process streams it. It logs one
// line each time the holder changes, naming it.
func (s *Stream) waitForSlot(ctx context.Context, conn *pgconn.PgConn) (uint64, error) {
	defer s.holder.Store(nil)
	standby := false
	for {
		info, err := s.slot(ctx, conn)
		if err != nil {
			return 0, classify(err)
		}
		if info.recovery {
			// A promotion in progress, or a URL that names a standby:
			// reconnecting finds the primary once it is one.
			return 0, &StandbyError{Addr: conn.Conn().RemoteAddr().String(), Version: serverMajor(conn)}
		}
		if !info.exists {
			return 0, &FatalError{fmt.Errorf("replication slot %q does not exist in this database: run `outbox-cdc setup` first", s.cfg.Slot)}
		}
		if info.plugin != "pgoutput" {
			return 0, &FatalError{fmt.Errorf("replication slot %q uses plugin %q; outbox-cdc needs pgoutput", s.cfg.Slot, info.plugin)}
		}
		if info.invalidated != "" {
			return 0, &FatalError{&SlotInvalidatedError{Slot: s.cfg.Slot, Confirmed: info.confirmed, Cause: info.invalidated, InactiveSince: info.inactive}}
		}
		if !info.active {
			if standby {
				s.logger.Info("slot is free; taking over", "slot", s.cfg.Slot)
			}
			return info.confirmed, nil
		}
		if prev := s.holder.Load(); prev == nil || *prev != *info.holder {
			s.holder.Store(info.holder)
			s.logHolder(info.holder)
		}
		if !standby {
			standby = true
			s.setState(StateStandby)
		}
		s.turn(time.Now())
		t := time.NewTimer(s.cfg.StandbyPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil
		case <-t.C:
		}
	}
}

// logHolder logs who holds the slot the stream waits for.
func (s *Stream) logHolder(h *Holder) {
	attrs := []any{"slot", s.cfg.Slot, "holder", h.String(), "pid", h.PID, "application_name", h.ApplicationName, "client", h.ClientAddr}
	if h.OutboxCDC() {
		s.logger.Info("slot is streamed by another outbox-cdc; waiting as hot standby", attrs...)
		return
	}
	s.logger.Warn("slot is held by a program other than outbox-cdc; waiting until it lets go, nothing is delivered meanwhile", attrs...)
}

// classify is the package's classify, and names a slot the server refuses
// to stream because it was invalidated. confirmed is the slot's position
// when streaming began.
func (s *Stream) classify(err error, confirmed uint64) error {
	if invalidatedRefusal(err) {
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		cause := pgErr.Message
		if pgErr.Detail != "" {
			cause += ": " + pgErr.Detail
		}
		return &FatalError{&SlotInvalidatedError{Slot: s.cfg.Slot, Confirmed: confirmed, Cause: cause}}
	}
	return classify(err)
}

// serverMajor returns the server's major version from its server_version
// parameter (e.g. "17.10" or "15.14 (Debian 15.14-0+deb12u1)"), 0 when
// unknown.
func serverMajor(conn *pgconn.PgConn) int {
	f := strings.FieldsFunc(conn.ParameterStatus("server_version"), func(r rune) bool { return r < '0' || r > '9' })
	if len(f) == 0 {
		return 0
	}
	major, _ := strconv.Atoi(f[0])
	return major
}

// protoVersion picks the newest pgoutput protocol the server speaks: 2 on
// PostgreSQL 14, 3 on 15, 4 on 16 and newer. Streaming of in-progress
// transactions (protocol 2+) and two-phase decoding (3+) stay off, so every
// version sends each transaction whole at its commit, in commit order: a
// transaction that aborts is never sent, and the server, not outbox-cdc,
// spills a large one to disk (logical_decoding_work_mem) until its commit
// (docs/postgres-versions.md says why and what it costs).
func protoVersion(conn *pgconn.PgConn) int {
	major := serverMajor(conn)
	switch {
	case major >= 16:
		return 4
	case major >= 15:
		return 3
	case major >= 14:
		return 2
	default:
		return 1
	}
}

func (s *Stream) start(ctx context.Context, conn *pgconn.PgConn, start uint64) error {
	args := []string{
		fmt.Sprintf("proto_version '%d'", protoVersion(conn)),
		fmt.Sprintf("publication_names '%s'", s.cfg.Publication),
		"messages 'true'",
	}
	return pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args})
}

// stream reads until ctx is done or the connection fails.
func (s *Stream) stream(ctx context.Context, conn *pgconn.PgConn, floor uint64) error {
	netConn := conn.Conn()
	stop := context.AfterFunc(ctx, func() { netConn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	defer netConn.SetReadDeadline(time.Time{})

	next := time.Now().Add(s.cfg.StatusInterval)
	var deadline time.Time // the read deadline set on netConn
	timer := time.NewTimer(s.cfg.StatusInterval)
	defer timer.Stop()
	for {
		now := time.Now()
		s.turn(now)
		if now.After(next) {
			if err := s.sendStatus(conn, floor, false); err != nil {
				return err
			}
			next = time.Now().Add(s.cfg.StatusInterval)
		}
		if wait := s.c.Wait(); wait != nil {
			timer.Reset(time.Until(next))
			select {
			case <-wait:
			case <-timer.C:
			case <-ctx.Done():
				return nil
			}
			if s.hooks.WindowFull != nil {
				s.hooks.WindowFull(time.Since(now))
			}
			continue
		}
		if next != deadline {
			netConn.SetReadDeadline(next)
			deadline = next
		}
		if ctx.Err() != nil {
			return nil
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isTimeout(err) {
				continue
			}
			return fmt.Errorf("replication: receive: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.copyData(conn, m.Data, floor); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return s.classify(pgconn.ErrorResponseToPgError(m), floor)
		case *pgproto3.CopyDone:
			return errors.New("replication: server ended the stream")
		}
	}
}

func (s *Stream) copyData(conn *pgconn.PgConn, data []byte, floor uint64) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		if len(data) < 18 {
			return fmt.Errorf("replication: short keepalive (%d bytes)", len(data))
		}
		walEnd := binary.BigEndian.Uint64(data[1:])
		if !s.cfg.NoKeepaliveFollow {
			s.c.Keepalive(walEnd)
		}
		if data[17] != 0 {
			return s.sendStatus(conn, floor, false)
		}
	case pglogrepl.XLogDataByteID:
		if len(data) < 25 {
			return fmt.Errorf("replication: short XLogData (%d bytes)", len(data))
		}
		walStart := binary.BigEndian.Uint64(data[1:])
		if err := s.c.WAL(walStart, data[25:]); err != nil {
			if !sink.IsPermanent(err) {
				return err
			}
			return &FatalError{err}
		}
	}
	return nil
}

// sendStatus reports the safe position, never below floor (the slot's
// confirmed position when streaming began), as write, flush and apply.
func (s *Stream) sendStatus(conn *pgconn.PgConn, floor uint64, reply bool) error {
	pos := max(s.c.Safe(), floor)
	lsn := pglogrepl.LSN(pos)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn,
		WALFlushPosition: lsn,
		WALApplyPosition: lsn,
		ClientTime:       time.Now(),
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("replication: send standby status: %w", err)
	}
	s.sent.Store(pos)
	if s.hooks.Status != nil {
		s.hooks.Status(pos)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
