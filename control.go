package outboxcdc

import (
	"errors"
	"fmt"
	"time"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/fanout"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
)

// Snapshot is the state of an application at one moment, for an admin
// console or a status page. Figures read from the server (LagBytes,
// RetainedWALBytes, WALStatus) are as of SlotReadAt, polled every
// http.slot_poll.
type Snapshot struct {
	// Role is the replication stream's state: "starting" before Run,
	// "connecting", "standby" (another process holds the slot),
	// "streaming", "reconnecting" or "stopped".
	Role string `json:"role"`
	// Since is when the stream entered Role; zero before Run.
	Since time.Time `json:"since,omitzero"`
	// Uptime is the time since New.
	Uptime time.Duration `json:"uptime"`
	// Version is Options.Version.
	Version string `json:"version"`
	// Slot and Publication are the replication slot and publication.
	Slot        string `json:"slot"`
	Publication string `json:"publication"`
	// ConfirmedLSN is the last position this instance confirmed to the
	// server ("0/0" before the first).
	ConfirmedLSN string `json:"confirmed_lsn"`
	// InFlightEvents and InFlightBytes are in the window: decoded, not yet
	// acknowledged by every sink they are routed to.
	InFlightEvents int64 `json:"inflight_events"`
	InFlightBytes  int64 `json:"inflight_bytes"`
	// LagSeconds is the age of the oldest committed event not yet
	// acknowledged everywhere; 0 when nothing is in flight.
	LagSeconds float64 `json:"lag_seconds"`
	// LagBytes is how far the slot's confirmed position trails the
	// server's WAL; RetainedWALBytes is the WAL the slot keeps on the
	// server; WALStatus is pg_replication_slots.wal_status.
	LagBytes         int64  `json:"lag_bytes"`
	RetainedWALBytes int64  `json:"retained_wal_bytes"`
	WALStatus        string `json:"wal_status,omitempty"`
	// SlotReadAt is when the slot's figures were read; zero before the
	// first poll. SlotError says why they could not be read, if so.
	SlotReadAt time.Time `json:"slot_read_at,omitzero"`
	SlotError  string    `json:"slot_error,omitempty"`
	// Holder is the process that streams the slot (this instance while
	// streaming, another one while standby); nil when none does.
	Holder *Holder `json:"holder,omitempty"`
	// Sinks are the sinks in configuration order, custom sinks last.
	Sinks []SinkState `json:"sinks"`
}

// Holder is a process streaming the replication slot, as
// pg_stat_activity shows it (fields the server hides from the role are
// empty).
type Holder struct {
	// PID is the walsender's process id.
	PID int `json:"pid"`
	// ApplicationName is the client's application_name.
	ApplicationName string `json:"application_name"`
	// ClientAddr and User are the client's address and role.
	ClientAddr string `json:"client_addr,omitempty"`
	User       string `json:"user,omitempty"`
	// OutboxCDC tells whether it is an outbox-cdc (by application_name).
	OutboxCDC bool `json:"outbox_cdc"`
}

// SinkState is one sink's state.
type SinkState struct {
	Name string `json:"name"`
	// Paused is true between PauseSink and ResumeSink.
	Paused bool `json:"paused"`
	// Pending counts the events handed to the sink that it has neither
	// acknowledged nor had stored as dead letters.
	Pending int64 `json:"pending"`
	// LastError is the last failure since the sink's last acknowledgement,
	// and LastErrorSince when it happened; "" when none.
	LastError      string    `json:"last_error,omitempty"`
	LastErrorSince time.Time `json:"last_error_since,omitzero"`
	// ProgressAt is when the sink last made progress: acknowledged an
	// event, or was handed one while it had none pending. With Pending
	// events, readiness fails once it is older than http.sink_timeout.
	ProgressAt time.Time `json:"progress_at,omitzero"`
	// AcknowledgedLSN is a commit position below which the sink has
	// acknowledged every event routed to it ("0/0" before the first).
	AcknowledgedLSN string `json:"acknowledged_lsn"`
	// Published, Acknowledged and DeadLettered count the events handed to
	// the sink, acknowledged by it, and stored as its dead letters since
	// New.
	Published    int64 `json:"published"`
	Acknowledged int64 `json:"acknowledged"`
	DeadLettered int64 `json:"dead_lettered"`
}

// Snapshot returns the application's state now. It never blocks on the
// network. Safe for concurrent use, before, during and after Run.
func (a *App) Snapshot() Snapshot {
	s := Snapshot{
		Role:         "starting",
		Uptime:       time.Since(a.started).Round(time.Millisecond),
		Version:      a.opts.Version,
		Slot:         a.cfg.Postgres.Slot,
		Publication:  a.cfg.Postgres.Publication,
		ConfirmedLSN: decoder.FormatLSN(a.stream.Reported()),
	}
	if state, since := a.metrics.CurrentState(); !since.IsZero() {
		s.Role, s.Since = state.String(), since
	}
	s.InFlightEvents, s.InFlightBytes = a.cp.InFlight()
	if t, ok := a.cp.Oldest(); ok {
		s.LagSeconds = max(0, time.Since(t).Seconds())
	}
	st, at, err := a.server.SlotStatus()
	s.SlotReadAt = at
	if err != nil {
		s.SlotError = err.Error()
	} else if st.Exists {
		s.LagBytes, s.RetainedWALBytes, s.WALStatus = st.LagBytes, st.RetainedBytes, st.WALStatus
	}
	h := st.Holder
	if a.stream.State() == replication.StateStandby {
		h = a.stream.Holder()
	}
	if h != nil {
		s.Holder = &Holder{PID: h.PID, ApplicationName: h.ApplicationName, ClientAddr: h.ClientAddr, User: h.User, OutboxCDC: h.OutboxCDC()}
	}
	health := map[string]SinkState{}
	for _, sh := range a.metrics.SinkHealths() {
		health[sh.Name] = SinkState{Pending: sh.Pending, LastError: sh.LastError, LastErrorSince: sh.ErrorAt, ProgressAt: sh.Progress,
			Published: sh.Published, Acknowledged: sh.Acknowledged, DeadLettered: sh.DeadLettered}
	}
	for _, fs := range a.fan.State() {
		ss := health[fs.Name]
		ss.Name, ss.Paused, ss.Pending = fs.Name, fs.Paused, fs.Pending
		if fs.Err != nil {
			ss.LastError, ss.LastErrorSince = fs.Err.Error(), fs.Since
		}
		ss.AcknowledgedLSN = decoder.FormatLSN(fs.Acked)
		s.Sinks = append(s.Sinks, ss)
	}
	return s
}

// ErrUnknownSink is matched (errors.Is) by PauseSink and ResumeSink for a
// name that is no sink of the application.
var ErrUnknownSink = errors.New("outboxcdc: no such sink")

// PauseSink stops handing events to the sink named name. Its events stay
// unacknowledged: the slot holds, the window fills and the stream stops
// reading, exactly as with a broker that is down; nothing is lost. The
// pause lasts until ResumeSink or the end of the process (a restart
// resumes). It returns an error matching ErrUnknownSink for a name that is
// no sink. Safe for concurrent use.
func (a *App) PauseSink(name string) error {
	if err := a.fan.Pause(name); err != nil {
		return a.sinkError(name, err)
	}
	a.logger.Info("sink paused", "sink", name)
	return nil
}

// ResumeSink hands a paused sink its events again, in order. It returns an
// error matching ErrUnknownSink for a name that is no sink. Safe for
// concurrent use.
func (a *App) ResumeSink(name string) error {
	if err := a.fan.Resume(name); err != nil {
		return a.sinkError(name, err)
	}
	a.logger.Info("sink resumed", "sink", name)
	return nil
}

// sinkError maps the fan-out's unknown-sink error to ErrUnknownSink.
func (a *App) sinkError(name string, err error) error {
	if errors.Is(err, fanout.ErrUnknownSink) {
		return fmt.Errorf("%w: %q", ErrUnknownSink, name)
	}
	return err
}

// EffectiveConfig returns the configuration the application runs with,
// every default filled in, with every secret replaced by config.Mask (see
// config.Config.Redacted). Safe for concurrent use.
func (a *App) EffectiveConfig() *config.Config { return a.cfg.Redacted() }
