package observe

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

const ns = "outbox_cdc"

// LatencyBuckets are the commit-to-acknowledgement histogram buckets, in
// seconds.
var LatencyBuckets = []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Metrics holds every outbox-cdc metric. It implements sink.Observer; its
// methods are safe for concurrent use and never block.
type Metrics struct {
	Registry *prometheus.Registry
	// reg registers outbox-cdc's own metrics into Registry with the slot
	// label.
	reg prometheus.Registerer

	decoded      prometheus.Counter
	decodeErrors prometheus.Counter
	nonTxMsgs    prometheus.Counter
	published    *prometheus.CounterVec
	pubBytes     *prometheus.CounterVec
	acked        *prometheus.CounterVec
	retried      *prometheus.CounterVec
	duplicates   *prometheus.CounterVec
	otherCommit  *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	reconnects   prometheus.Counter
	state        *prometheus.GaugeVec
	windowFull   prometheus.Counter

	slotLag      prometheus.Gauge
	slotRetained prometheus.Gauge
	slotSafeWAL  prometheus.Gauge
	slotActive   prometheus.Gauge
	slotOwned    prometheus.Gauge
	slotWAL      *prometheus.GaugeVec
	slotUp       prometheus.Gauge
	drift        *prometheus.GaugeVec

	sinks sync.Map // name → *sinkMetrics

	mu        sync.Mutex
	lastState replication.State
	stateSet  bool
	stateAt   time.Time
	curState  atomic.Int32
}

type sinkMetrics struct {
	published, bytes, acked, retried, dups, dead prometheus.Counter
	other                                        prometheus.Counter // duplicates from another commit
	latency                                      prometheus.Observer
	health                                       *sinkHealth
}

// NewMetrics registers every metric in a new registry, with build info and
// the Go and process collectors. Every outbox_cdc_ series carries the label
// slot (the replication slot streamed), so that rules and dashboards can
// tell apart deployments of different slots and aggregate the instances of
// one slot (an active one and its standbys).
func NewMetrics(version, slot string) *Metrics {
	r := prometheus.NewRegistry()
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"slot": slot}, r)
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{Registry: r, reg: reg}
	m.decoded = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_decoded_total", Help: "Events decoded from the WAL."})
	m.decodeErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "decode_errors_total", Help: "Rows or messages that could not become a CloudEvent."})
	m.nonTxMsgs = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_non_transactional_total", Help: "Non-transactional logical decoding messages with the outbox prefix; each follows outbox.on_invalid, none is published."})
	m.published = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_published_total", Help: "Events handed to a sink."}, []string{"sink"})
	m.pubBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "published_bytes_total", Help: "Approximate event bytes handed to a sink."}, []string{"sink"})
	m.acked = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_acknowledged_total", Help: "Events a sink's broker acknowledged."}, []string{"sink"})
	m.retried = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_retried_total", Help: "Failed delivery attempts that will be retried."}, []string{"sink"})
	m.duplicates = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_duplicate_total", Help: "Resent events the broker already held (broker dedup by source and id, same commit)."}, []string{"sink"})
	m.otherCommit = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_duplicate_other_commit_total", Help: "Events the broker dropped as duplicates of a stored event with the same source and id from another commit: not stored."}, []string{"sink"})
	m.deadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_dead_lettered_total", Help: "Events stored in the dead-letter table."}, []string{"sink"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "ack_latency_seconds", Help: "Time from the transaction's commit to the sink's acknowledgement.", Buckets: LatencyBuckets}, []string{"sink"})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reconnects_total", Help: "Replication connections lost and re-established."})
	m.state = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "state", Help: "1 for the replication stream's current state."}, []string{"state"})
	m.windowFull = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "window_full_seconds_total", Help: "Time the reader spent stopped on a full window (back-pressure)."})
	m.slotLag = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "slot_confirmed_lag_bytes", Help: "pg_current_wal_lsn() - confirmed_flush_lsn of the slot."})
	m.slotRetained = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "slot_retained_wal_bytes", Help: "WAL the slot keeps on the server: pg_current_wal_lsn() - restart_lsn."})
	m.slotSafeWAL = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "slot_safe_wal_size_bytes", Help: "WAL that may still be written before the slot risks losing WAL (max_slot_wal_keep_size); -1 when unlimited."})
	m.slotActive = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "slot_active", Help: "1 when some process streams the slot."})
	m.slotOwned = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "slot_owned", Help: "1 when this instance streams the slot (0 for a standby)."})
	m.slotWAL = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "slot_wal_status", Help: "1 for the slot's wal_status (reserved, extended, unreserved, lost)."}, []string{"status"})
	m.slotUp = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "slot_exists", Help: "1 when the slot exists on the server."})
	m.drift = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "publication_drift", Help: "1 when the outbox table is no longer streamed as it was (left the publication, dropped, recreated or replaced): the stream stopped; rows written since need outbox-cdc backfill."}, []string{"table"})
	for _, c := range []prometheus.Collector{m.decoded, m.decodeErrors, m.nonTxMsgs, m.published, m.pubBytes, m.acked, m.retried, m.duplicates,
		m.otherCommit, m.deadLettered, m.latency, m.reconnects, m.state, m.windowFull, m.slotLag, m.slotRetained, m.slotSafeWAL, m.slotActive,
		m.slotOwned, m.slotWAL, m.slotUp, m.drift} {
		f(c)
	}
	bi := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info", Help: "Build information; always 1."}, []string{"version", "goversion"})
	bi.WithLabelValues(version, runtime.Version()).Set(1)
	f(bi)
	r.MustRegister(collectors.NewGoCollector())
	r.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, s := range []replication.State{replication.StateConnecting, replication.StateStandby, replication.StateStreaming, replication.StateReconnecting, replication.StateStopped} {
		m.state.WithLabelValues(s.String()).Set(0)
	}
	for _, s := range []string{"reserved", "extended", "unreserved", "lost"} {
		m.slotWAL.WithLabelValues(s).Set(0)
	}
	return m
}

// AddSink prepares the per-sink series so that they exist (at zero) before
// the first event.
func (m *Metrics) AddSink(name string) {
	sm := &sinkMetrics{
		published: m.published.WithLabelValues(name),
		bytes:     m.pubBytes.WithLabelValues(name),
		acked:     m.acked.WithLabelValues(name),
		retried:   m.retried.WithLabelValues(name),
		dups:      m.duplicates.WithLabelValues(name),
		other:     m.otherCommit.WithLabelValues(name),
		dead:      m.deadLettered.WithLabelValues(name),
		latency:   m.latency.WithLabelValues(name),
		health:    &sinkHealth{name: name},
	}
	m.sinks.Store(name, sm)
}

func (m *Metrics) sink(name string) *sinkMetrics {
	if v, ok := m.sinks.Load(name); ok {
		return v.(*sinkMetrics)
	}
	m.AddSink(name)
	v, _ := m.sinks.Load(name)
	return v.(*sinkMetrics)
}

var _ sink.Observer = (*Metrics)(nil)

// Acked implements sink.Observer.
func (m *Metrics) Acked(name string, e *event.Event) {
	s := m.sink(name)
	s.acked.Inc()
	now := time.Now() // one clock read per event for both: this runs for every event
	if !e.CommitTime.IsZero() {
		s.latency.Observe(now.Sub(e.CommitTime).Seconds())
	}
	s.health.settled(now, 1, false)
}

// Retried implements sink.Observer.
func (m *Metrics) Retried(name string, err error) {
	s := m.sink(name)
	s.retried.Inc()
	s.health.failed(err)
}

// Duplicate implements sink.Observer.
func (m *Metrics) Duplicate(name string, _ *event.Event) { m.sink(name).dups.Inc() }

var _ sink.OtherCommitObserver = (*Metrics)(nil)

// DuplicateOtherCommit implements sink.OtherCommitObserver.
func (m *Metrics) DuplicateOtherCommit(name string, _ *event.Event, _ uint64) {
	m.sink(name).other.Inc()
}

// DeadLettered counts an event stored in the dead-letter table for a sink:
// the sink will not acknowledge it, and it no longer counts as pending.
func (m *Metrics) DeadLettered(name string) {
	s := m.sink(name)
	s.dead.Inc()
	s.health.settled(time.Now(), 1, true)
}

// AddOutbox prepares the per-table series (at zero) for an outbox table.
func (m *Metrics) AddOutbox(table string) { m.drift.WithLabelValues(table).Set(0) }

// Drift marks an outbox table as no longer streamed as it was.
func (m *Metrics) Drift(table string) { m.drift.WithLabelValues(table).Set(1) }

// Published is the fan-out hook: a batch is being handed to a sink.
func (m *Metrics) Published(name string, evs []*event.Event) {
	s := m.sink(name)
	n := 0
	for _, e := range evs {
		n += e.Size
	}
	s.published.Add(float64(len(evs)))
	s.bytes.Add(float64(n))
	s.health.published(len(evs))
}

// Decoded is the pipeline hook: an event was decoded.
func (m *Metrics) Decoded(*event.Event, int) { m.decoded.Inc() }

// DecodeError counts a row that could not become a CloudEvent.
func (m *Metrics) DecodeError() { m.decodeErrors.Inc() }

// NonTransactionalMessage counts a non-transactional message with the outbox
// prefix (also counted by DecodeError).
func (m *Metrics) NonTransactionalMessage() { m.nonTxMsgs.Inc() }

// Reconnect is the stream hook for a lost connection.
func (m *Metrics) Reconnect(error) { m.reconnects.Inc() }

// WindowFull adds time the reader was stopped by a full window.
func (m *Metrics) WindowFull(d time.Duration) { m.windowFull.Add(d.Seconds()) }

// State is the stream hook for state changes.
func (m *Metrics) State(s replication.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stateSet {
		m.state.WithLabelValues(m.lastState.String()).Set(0)
	}
	m.state.WithLabelValues(s.String()).Set(1)
	m.lastState, m.stateSet, m.stateAt = s, true, time.Now()
	m.curState.Store(int32(s))
}

// CurrentState returns the last state reported and since when.
func (m *Metrics) CurrentState() (replication.State, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastState, m.stateAt
}

// Sinks returns the health of every sink, sorted by name.
func (m *Metrics) sinkHealths() []*sinkHealth {
	var out []*sinkHealth
	m.sinks.Range(func(_, v any) bool {
		out = append(out, v.(*sinkMetrics).health)
		return true
	})
	sortHealths(out)
	return out
}
