package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var metricName = regexp.MustCompile(`outbox_cdc_[a-z_]+`)

// Acceptance: the alert rules pass promtool, and every metric the dashboard
// and the rules query exists in a real scrape.
func TestOperatorKit(t *testing.T) {
	rules := "../deploy/prometheus/alerts.yml"
	t.Run("promtool check rules", func(t *testing.T) {
		promtool := needTool(t, "promtool", "Debian package prometheus")
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
		Title    string           `json:"title"`
		Inputs   []map[string]any `json:"__inputs"`
		Requires []map[string]any `json:"__requires"`
		Panels   []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatal("dashboard has no title or no panels")
	}
	// Grafana's conventions for a dashboard others import: __inputs and
	// __requires, variables $job, $instance and $sink that every query
	// filters on, and $__rate_interval in every rate.
	if len(dash.Inputs) == 0 || len(dash.Requires) == 0 {
		t.Error("dashboard has no __inputs or __requires: Grafana's import asks for nothing")
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	for _, want := range []string{"datasource", "job", "instance", "sink"} {
		if !vars[want] {
			t.Errorf("dashboard has no variable $%s", want)
		}
	}
	rangeFn := regexp.MustCompile(`(rate|increase|deriv)\([^\[]*\[([^\]]*)\]`)
	used := map[string]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				used[m] = "dashboard panel " + p.Title
			}
			if !strings.Contains(tg.Expr, `job=~"$job"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %s does not filter on $job and $instance", p.Title, tg.Expr)
			}
			if strings.Contains(tg.Expr, "{sink}") || strings.Contains(tg.Expr, "by (sink") || strings.Contains(tg.Expr, "sink)") {
				if !strings.Contains(tg.Expr, `sink=~"$sink"`) {
					t.Errorf("panel %q: %s groups by sink without filtering on $sink", p.Title, tg.Expr)
				}
			}
			for _, m := range rangeFn.FindAllStringSubmatch(tg.Expr, -1) {
				if m[2] != "$__rate_interval" {
					t.Errorf("panel %q: %s uses [%s], want [$__rate_interval]", p.Title, tg.Expr, m[2])
				}
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
	checkAlertConventions(t, string(rb))

	e := newEnv(t, "")
	addr := httpAddr(t)
	p := e.start("OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_SLOT_POLL=100ms")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, data) VALUES ('k.test', '/k', '{}')`)
	waitFor(t, 10*time.Second, "one event", func() bool { return e.countLines() >= 1 })
	time.Sleep(300 * time.Millisecond)
	fams := scrape(t, addr)
	// The container image's HEALTHCHECK.
	if out, err := e.cli(context.Background(), "healthcheck", "--addr", addr); err != nil {
		t.Errorf("outbox-cdc healthcheck --addr %s: %v\n%s", addr, err, out)
	}
	p.stop(t)
	if out, err := e.cli(context.Background(), "healthcheck", "--addr", addr); err == nil {
		t.Errorf("outbox-cdc healthcheck succeeded with outbox-cdc stopped:\n%s", out)
	}
	// Every outbox_cdc_ metric has the label slot and a row in the
	// metrics table of docs/operations.md.
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "outbox_cdc_") {
			continue
		}
		if !strings.Contains(string(ops), "`"+name) {
			t.Errorf("metric %s is missing from the metrics table of docs/operations.md", name)
		}
		for _, m := range f.GetMetric() {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == "slot" && l.GetValue() == "outbox_cdc")
			}
			if !found {
				t.Errorf("metric %s has a series without slot=\"outbox_cdc\": %v", name, m.GetLabel())
				break
			}
		}
	}
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

// checkAlertConventions checks the alert rules against the conventions of
// an operator kit: a runbook_url into the docs' troubleshooting page whose
// anchor exists, alerts for a process that is gone (up == 0) or a target
// that disappeared (absent), and slot rules aggregated per slot.
func checkAlertConventions(t *testing.T, rules string) {
	t.Helper()
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(rules), &doc); err != nil {
		t.Fatal(err)
	}
	trouble, err := os.ReadFile("../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(trouble))
	var up, absent bool
	const base = "https://outbox-cdc.github.io/outbox-cdc/troubleshooting/#"
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			up = up || strings.Contains(r.Expr, "up{") && strings.Contains(r.Expr, "== 0")
			absent = absent || strings.Contains(r.Expr, "absent(")
			u := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(u, base)
			if !ok {
				t.Errorf("alert %s: runbook_url %q does not point into %s", r.Alert, u, base)
			} else if !anchors[anchor] {
				t.Errorf("alert %s: runbook_url anchor #%s is not a heading of docs/troubleshooting.md", r.Alert, anchor)
			}
			if strings.Contains(r.Expr, "outbox_cdc_slot_") && !strings.Contains(r.Expr, "by (slot") {
				t.Errorf("alert %s: %s is not aggregated per slot", r.Alert, r.Expr)
			}
		}
	}
	if !up || !absent {
		t.Errorf("the rules have no alert for a process that is gone (up == 0: %v) or for no target at all (absent(): %v)", up, absent)
	}
}

// headingAnchors returns the anchors MkDocs gives the headings of a page
// (toc's default slugify: lower case, punctuation dropped, spaces to
// hyphens), and explicit { #id } attributes.
func headingAnchors(md string) map[string]bool {
	out := map[string]bool{}
	attr := regexp.MustCompile(`\{\s*#([\w-]+)\s*\}`)
	drop := regexp.MustCompile(`[^\w\s-]`)
	space := regexp.MustCompile(`[-\s]+`)
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		if m := attr.FindStringSubmatch(text); m != nil {
			out[m[1]] = true
			text = strings.TrimSpace(attr.ReplaceAllString(text, ""))
		}
		text = strings.ReplaceAll(text, "`", "")
		slug := space.ReplaceAllString(strings.TrimSpace(strings.ToLower(drop.ReplaceAllString(text, ""))), "-")
		out[slug] = true
	}
	return out
}
