// Package prom implements handler.Observer with Prometheus metrics, named
// as outbox-cdc names its own (namespace outbox_cdc):
//
//	outbox_cdc_handler_events_handled_total{consumer,route}       events that took effect
//	outbox_cdc_handler_events_failed_total{consumer,route}        failed attempts
//	outbox_cdc_handler_events_retried_total{consumer,route}       failed attempts that will be retried
//	outbox_cdc_handler_events_duplicate_total{consumer}           deliveries skipped by the inbox
//	outbox_cdc_handler_events_dead_lettered_total{consumer,route} events parked after their last attempt
//	outbox_cdc_handler_events_unrouted_total{consumer}            events no handler matched
//	outbox_cdc_handler_events_invalid_total{consumer}             messages that are not CloudEvents
//	outbox_cdc_handler_latency_seconds{consumer,route}            histogram of a successful attempt (inbox transaction included)
//	outbox_cdc_handler_consumer_lag{consumer,partition}           messages not read yet, as the broker reports it
//
// route is the router pattern that matched, so the label's values are
// bounded by the handlers registered.
package prom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outbox-cdc/outbox-cdc/handler"
)

// LatencyBuckets are the handler latency histogram's buckets, in seconds.
var LatencyBuckets = []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics is a handler.Observer that feeds Prometheus. Safe for concurrent
// use; its methods never block.
type Metrics struct {
	handled, failed, retried, dead *prometheus.CounterVec
	dups, unrouted, invalid        *prometheus.CounterVec
	latency                        *prometheus.HistogramVec
	lag                            *prometheus.GaugeVec
}

var _ handler.Observer = (*Metrics)(nil)

// New registers the metrics with reg and returns them. It returns an error
// when reg holds metrics of the same names.
func New(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "outbox_cdc", "handler"
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		handled:  cv("events_handled_total", "Events whose handler took effect (under an inbox: committed).", "consumer", "route"),
		failed:   cv("events_failed_total", "Failed handler attempts.", "consumer", "route"),
		retried:  cv("events_retried_total", "Failed handler attempts that will be retried.", "consumer", "route"),
		dead:     cv("events_dead_lettered_total", "Events parked in the inbox after their last attempt.", "consumer", "route"),
		dups:     cv("events_duplicate_total", "Deliveries the inbox found handled before; skipped.", "consumer"),
		unrouted: cv("events_unrouted_total", "Events whose type no handler matches; skipped.", "consumer"),
		invalid:  cv("events_invalid_total", "Messages that are not valid CloudEvents; skipped.", "consumer"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "latency_seconds",
			Help: "Duration of a successful handler attempt, inbox transaction included.", Buckets: LatencyBuckets}, []string{"consumer", "route"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "consumer_lag",
			Help: "Messages the consumer has not read yet, as the broker reports it."}, []string{"consumer", "partition"}),
	}
	for _, c := range []prometheus.Collector{m.handled, m.failed, m.retried, m.dead, m.dups, m.unrouted, m.invalid, m.latency, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) Handled(consumer, route string, d time.Duration) {
	m.handled.WithLabelValues(consumer, route).Inc()
	m.latency.WithLabelValues(consumer, route).Observe(d.Seconds())
}

func (m *Metrics) Failed(consumer, route string, retry bool) {
	m.failed.WithLabelValues(consumer, route).Inc()
	if retry {
		m.retried.WithLabelValues(consumer, route).Inc()
	}
}

func (m *Metrics) Duplicate(consumer string)           { m.dups.WithLabelValues(consumer).Inc() }
func (m *Metrics) DeadLettered(consumer, route string) { m.dead.WithLabelValues(consumer, route).Inc() }
func (m *Metrics) Unrouted(consumer string)            { m.unrouted.WithLabelValues(consumer).Inc() }
func (m *Metrics) Invalid(consumer string)             { m.invalid.WithLabelValues(consumer).Inc() }
func (m *Metrics) Lag(consumer, partition string, lag int64) {
	m.lag.WithLabelValues(consumer, partition).Set(float64(lag))
}
