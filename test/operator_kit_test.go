package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

var metricName = regexp.MustCompile(`outbox_cdc_[a-z_]+`)

// Acceptance: the alert rules pass promtool, and every metric the dashboard
// and the rules query exists in a real scrape.
func TestOperatorKit(t *testing.T) {
	rules := "../deploy/prometheus/alerts.yml"
	t.Run("promtool check rules", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			if harness.Require("promtool") {
				t.Fatal("promtool is not installed (Debian package prometheus)")
			}
			t.Skip("promtool is not installed (Debian package prometheus)")
		}
		out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, out)
		}
	})

	b, err := os.ReadFile("../deploy/grafana/outbox-cdc.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatal("dashboard has no title or no panels")
	}
	used := map[string]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				used[m] = "dashboard panel " + p.Title
			}
		}
	}
	rb, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metricName.FindAllString(string(rb), -1) {
		used[m] = "alert rules"
	}

	e := newEnv(t, "")
	addr := httpAddr(t)
	p := e.start("OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_SLOT_POLL=100ms")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, data) VALUES ('k.test', '/k', '{}')`)
	waitFor(t, 10*time.Second, "one event", func() bool { return e.countLines() >= 1 })
	time.Sleep(300 * time.Millisecond)
	fams := scrape(t, addr)
	p.stop(t)
	for m, where := range used {
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if s, ok := strings.CutSuffix(m, suf); ok && fams[s] != nil {
				base = s
			}
		}
		if fams[base] == nil {
			t.Errorf("%s queries %s, which a scrape does not have", where, m)
		}
	}
}
