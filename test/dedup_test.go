package test

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 8 K4 and issue 9 ("an id the sink already holds, from another
// commit"): broker dedup is keyed on CloudEvents identity, source + id.
//
// Two outbox tables with text ids write the same id "1001" under the
// sources /shipping and /returns: both events are stored and nothing counts
// as a duplicate. outbox-cdc is then killed before it confirmed them and
// started again: the slot sends them again and the broker drops both as
// true resends (same identity, same commit LSN). Last, a row of a later
// transaction reuses the identity /shipping 1001: the broker drops it, and
// outbox-cdc logs it with source, id and both LSNs and counts it apart from
// resends.
func TestDedupIdentityIsSourceAndID(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broker func(*testing.T) broker
		sink   func(b broker) string
	}{
		{"nats", natsBroker, func(b broker) string { return b.sinkYAML("bus") }},
		{"redis-guard", redisBroker, func(b broker) string {
			k := b.(*redisKit)
			k.stream = fmt.Sprintf("dedup:%d", time.Now().UnixNano())
			return fmt.Sprintf(`  - name: bus
    type: redis
    redis: {address: %q, stream: %q, dedup: guard, retry: {initial: 100ms, max: 1s}}`, k.r.Addr(), k.stream)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.broker(t)
			testDedupIdentity(t, b, tc.sink(b))
		})
	}
}

func testDedupIdentity(t *testing.T, b broker, sinkYAML string) {
	e := newEnv(t, "")
	for _, table := range []string{"shipping_outbox", "returns_outbox"} {
		e.exec(`CREATE TABLE ` + table + ` (
			id text NOT NULL, type text NOT NULL, source text NOT NULL, subject text,
			aggregate_type text, aggregate_id text, data jsonb,
			datacontenttype text DEFAULT 'application/json', dataschema text, headers jsonb,
			created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, id))`)
	}
	writeFile(t, e.cfgPath, fmt.Sprintf(`postgres:
  url: %q
  status_interval: 1h   # nothing is confirmed before the kill below
  standby_poll: 200ms
outbox:
  tables:
    - {name: public.outbox}
    - {name: public.shipping_outbox}
    - {name: public.returns_outbox}
sinks:
%s
http: {addr: "-"}
log: {level: info}
`, pg.URL(e.db), sinkYAML))
	if out, err := e.cli(t.Context(), "setup", "--skip-tables"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	insert := func(table, source string) {
		e.exec(`INSERT INTO `+table+` (id, type, source, aggregate_type, aggregate_id, data)
			VALUES ('1001', 'com.example.a', $1, 'order', '1001', jsonb_build_object('table', $2::text))`, source, table)
	}
	stored := func() []string {
		var ids []string
		for _, r := range b.readAll(t) {
			ids = append(ids, r.ce.Source()+" "+r.ce.ID())
		}
		slices.Sort(ids)
		return ids
	}
	counts := func(addr string) (acked, dups, other float64) {
		f := scrape(t, addr)
		acked = mustMetric(t, f, "outbox_cdc_events_acknowledged_total", "sink", "bus")
		dups = mustMetric(t, f, "outbox_cdc_events_duplicate_total", "sink", "bus")
		other, _ = metric(f, "outbox_cdc_events_duplicate_other_commit_total", "sink", "bus")
		return
	}
	waitAcked := func(addr string, n float64) {
		t.Helper()
		waitFor(t, 15*time.Second, "the HTTP server", func() bool {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
		waitFor(t, 30*time.Second, fmt.Sprintf("%v events acknowledged", n), func() bool { a, _, _ := counts(addr); return a >= n })
	}
	want := []string{"/returns 1001", "/shipping 1001"}

	// Same id, two sources: two events.
	addr := httpAddr(t)
	p := e.start("OUTBOX_CDC_HTTP_ADDR=" + addr)
	waitFor(t, 15*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	insert("shipping_outbox", "/shipping")
	insert("returns_outbox", "/returns")
	waitAcked(addr, 2)
	if got := stored(); !slices.Equal(got, want) {
		_, dups, _ := counts(addr)
		t.Fatalf("%s holds %q (duplicates counted: %v); want %q: same id, different sources are different events", b.name(), got, dups, want)
	}
	if _, dups, other := counts(addr); dups != 0 || other != 0 {
		t.Fatalf("duplicates %v, from another commit %v; want 0 and 0", dups, other)
	}
	if f := scrape(t, addr); f["outbox_cdc_events_duplicate_other_commit_total"] == nil {
		t.Errorf("no outbox_cdc_events_duplicate_other_commit_total series before the first one")
	}
	lsnOf := map[string]string{}
	for _, r := range b.readAll(t) {
		lsnOf[r.ce.Source()], _ = r.ce.Extensions()["pglsn"].(string)
	}

	// kill -9 before anything was confirmed: both come again from the slot.
	confirmed, _ := e.slot()
	if first := min(parseLSN(t, lsnOf["/shipping"]), parseLSN(t, lsnOf["/returns"])); confirmed >= first {
		t.Fatalf("the slot confirmed %X past the first event (%X) before the kill; the resend cannot be tested", confirmed, first)
	}
	p.kill()
	addr = httpAddr(t)
	p = e.start("OUTBOX_CDC_HTTP_ADDR=" + addr)
	waitAcked(addr, 2)
	if _, dups, other := counts(addr); dups != 2 || other != 0 {
		t.Fatalf("after the restart: duplicates %v, from another commit %v; want 2 true resends and 0", dups, other)
	}
	if got := stored(); !slices.Equal(got, want) {
		t.Fatalf("after the restart %s holds %q, want %q", b.name(), got, want)
	}

	// The identity /shipping 1001 again, from another transaction.
	insert("returns_outbox", "/shipping")
	waitAcked(addr, 3)
	if _, dups, other := counts(addr); dups != 2 || other != 1 {
		t.Fatalf("same identity from another commit: duplicates %v, from another commit %v; want 2 and 1", dups, other)
	}
	if got := stored(); !slices.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", b.name(), got, want)
	}
	var line string
	for _, l := range strings.Split(p.log(), "\n") {
		if strings.Contains(l, "stored_lsn=") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no log line with stored_lsn:\n%s", p.log())
	}
	for _, w := range []string{"sink=bus", "source=/shipping", "id=1001", "stored_lsn=" + lsnOf["/shipping"]} {
		if !strings.Contains(line, w) {
			t.Errorf("log line %q has no %q", line, w)
		}
	}
	m := regexp.MustCompile(` lsn=(\S+)`).FindStringSubmatch(line)
	if m == nil || m[1] == lsnOf["/shipping"] || parseLSN(t, m[1]) <= parseLSN(t, lsnOf["/returns"]) {
		t.Errorf("log line %q: lsn is not the later commit's", line)
	}
	p.stop(t)
}
