package main

import (
	"fmt"
	"math"
	"net/http"
	"sort"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type histogram struct {
	count   float64
	buckets []bucket // cumulative, sorted by bound
}

type bucket struct{ le, n float64 }

// scrapeHistogram reads outbox_cdc_ack_latency_seconds for one sink.
func scrapeHistogram(addr, sinkName string) (histogram, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return histogram{}, err
	}
	f := fams["outbox_cdc_ack_latency_seconds"]
	if f == nil {
		return histogram{}, fmt.Errorf("no latency histogram")
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "sink" && l.GetValue() == sinkName {
				h := histogram{count: float64(m.GetHistogram().GetSampleCount())}
				for _, b := range m.GetHistogram().GetBucket() {
					h.buckets = append(h.buckets, bucket{b.GetUpperBound(), float64(b.GetCumulativeCount())})
				}
				sort.Slice(h.buckets, func(i, j int) bool { return h.buckets[i].le < h.buckets[j].le })
				return h, nil
			}
		}
	}
	return histogram{}, fmt.Errorf("no latency histogram for sink %s", sinkName)
}

// quantile interpolates linearly inside the bucket, as histogram_quantile does.
func (h histogram) quantile(q float64) float64 {
	rank := q * h.count
	lo, prev := 0.0, 0.0
	for _, b := range h.buckets {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return lo
			}
			if b.n == prev {
				return b.le
			}
			return lo + (b.le-lo)*(rank-prev)/(b.n-prev)
		}
		lo, prev = b.le, b.n
	}
	return lo
}

// minus returns the observations h has beyond base, an earlier scrape of
// the same histogram.
func (h histogram) minus(base histogram) histogram {
	if base.count == 0 {
		return h
	}
	out := histogram{count: h.count - base.count}
	for i, b := range h.buckets {
		if i < len(base.buckets) && base.buckets[i].le == b.le {
			b.n -= base.buckets[i].n
		}
		out.buckets = append(out.buckets, b)
	}
	return out
}
