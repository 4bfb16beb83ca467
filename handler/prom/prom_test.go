package prom_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outbox-cdc/outbox-cdc/handler/prom"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := prom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Handled("c", "order.*", time.Millisecond)
	m.Failed("c", "order.*", true)
	m.Failed("c", "order.*", false)
	m.Duplicate("c")
	m.Lag("c", "t/0", 7)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			switch {
			case mm.GetCounter() != nil:
				got[mf.GetName()] += mm.GetCounter().GetValue()
			case mm.GetGauge() != nil:
				got[mf.GetName()] += mm.GetGauge().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{"outbox_cdc_handler_events_handled_total": 1, "outbox_cdc_handler_events_failed_total": 2,
		"outbox_cdc_handler_events_retried_total": 1, "outbox_cdc_handler_events_duplicate_total": 1, "outbox_cdc_handler_consumer_lag": 7} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if _, err := prom.New(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
}
