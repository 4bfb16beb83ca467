package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// dbNow returns the server's clock as timestamptz text, for --since/--from/--to.
func (e *env) dbNow() string {
	e.t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), "SELECT clock_timestamp()::text").Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// backfill runs `outbox-cdc backfill` with args and returns its output and
// exit code.
func (e *env) backfill(args ...string) (string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := e.cli(ctx, append([]string{"backfill"}, args...)...)
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("backfill %v: %v\n%s", args, err, out)
		}
		code = ee.ExitCode()
	}
	return out, code
}

// redisGuardYAML is a Redis sink in dedup "guard" mode, the mode backfill
// can replay into.
func redisGuardYAML(k *redisKit, name string) string {
	k.stream = fmt.Sprintf("e2e:%d", time.Now().UnixNano())
	return fmt.Sprintf(`  - name: %s
    type: redis
    redis: {address: %q, stream: %q, dedup: guard, retry: {initial: 100ms, max: 1s}}`, name, k.r.Addr(), k.stream)
}

// Acceptance (issue 8, K2 recover): events already streamed to each broker
// are backfilled again from the table: NATS and Redis (guard) drop every one
// as a duplicate, Kafka carries the same ids with the same attributes except
// pglsn. Rows written while the outbox was out of the publication, which the
// slot never sees, are delivered by the same backfill.
func TestBackfillReplaysIntoEveryBroker(t *testing.T) {
	kinds := []struct {
		get  func(*testing.T) broker
		yaml func(broker) string
	}{
		{kafkaBroker, func(b broker) string { return b.sinkYAML("bus") }},
		{natsBroker, func(b broker) string { return b.sinkYAML("bus") }},
		{redisBroker, func(b broker) string { return redisGuardYAML(b.(*redisKit), "bus") }},
	}
	for _, k := range kinds {
		b := k.get(t)
		t.Run(b.name(), func(t *testing.T) {
			ctx := context.Background()
			e := brokerEnv(t, k.yaml(b))
			from := e.dbNow()
			p := e.start()
			const streamed, gap = 300, 40
			rng := rand.New(rand.NewPCG(81, 81))
			next := make([]int, 10)
			if err := produceFrom(ctx, e, next, streamed, 20, 0, rng); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 2*time.Minute, "the streamed events", func() bool { return len(uniqueIDs(toDelivered(t, b.readAll(t)))) >= streamed })
			p.stop(t)
			before := b.readAll(t)

			// Rows that never reach the slot: written while the outbox is
			// out of the publication, with no outbox-cdc running.
			e.exec("BEGIN; SET LOCAL outbox_cdc.allow_ddl = on; ALTER PUBLICATION outbox_cdc DROP TABLE outbox; COMMIT")
			if err := produceFrom(ctx, e, next, gap, 3, 0, rng); err != nil {
				t.Fatal(err)
			}
			e.exec("BEGIN; SET LOCAL outbox_cdc.allow_ddl = on; ALTER PUBLICATION outbox_cdc ADD TABLE outbox; COMMIT")
			to := e.dbNow()

			out, code := e.backfill("--from", from, "--to", to)
			if code != 0 {
				t.Fatalf("backfill exited %d:\n%s", code, out)
			}
			t.Logf("backfill output:\n%s", out)
			if !strings.Contains(out, fmt.Sprintf("%d rows read", streamed+gap)) {
				t.Fatalf("backfill does not report %d rows read:\n%s", streamed+gap, out)
			}
			var got []received
			waitFor(t, time.Minute, "the gap's events", func() bool {
				got = b.readAll(t)
				return len(uniqueIDs(toDelivered(t, got))) >= streamed+gap
			})
			evs := toDelivered(t, got)
			_, count := checkDelivery(t, evs, streamed+gap)
			streamedIDs := uniqueIDs(toDelivered(t, before))
			for id, c := range count {
				want := 1
				if b.name() == "kafka" && streamedIDs[id] {
					want = 2 // Kafka has no broker dedup: consumers dedup by id
				}
				if c != want {
					t.Errorf("event %s is in %s %d times, want %d", id, b.name(), c, want)
				}
			}
			if b.name() != "kafka" {
				if !strings.Contains(out, fmt.Sprintf("%d already held", streamed)) {
					t.Errorf("backfill does not report the %d duplicates %s dropped:\n%s", streamed, b.name(), out)
				}
				return
			}
			// Kafka: the backfilled record is the streamed one but for pglsn.
			first := map[string]received{}
			for _, r := range got {
				f, seen := first[r.ce.ID()]
				if !seen {
					first[r.ce.ID()] = r
					continue
				}
				if _, ok := f.headers["ce_pglsn"]; !ok {
					t.Fatalf("streamed record %s has no ce_pglsn", r.ce.ID())
				}
				if v, ok := r.headers["ce_pglsn"]; ok {
					t.Fatalf("backfilled record %s carries ce_pglsn %q; the table does not know the commit LSN", r.ce.ID(), v)
				}
				want := maps.Clone(f.headers)
				delete(want, "ce_pglsn")
				if !maps.Equal(want, r.headers) {
					t.Fatalf("record %s: streamed headers %v, backfilled %v", r.ce.ID(), want, r.headers)
				}
				if string(f.ce.Data()) != string(r.ce.Data()) || f.key != r.key {
					t.Fatalf("record %s: streamed key %q data %s, backfilled key %q data %s", r.ce.ID(), f.key, f.ce.Data(), r.key, r.ce.Data())
				}
			}
		})
	}
}

// A Redis sink in dedup "entryid" mode names entries by commit LSN, which a
// row read from the table does not have, and Redis only takes growing ids:
// backfill refuses it, naming the sink and the mode to use, and writes
// nothing.
func TestBackfillRefusesRedisEntryID(t *testing.T) {
	k := redisBroker(t).(*redisKit)
	for _, mode := range []string{"entryid", "auto"} {
		t.Run(mode, func(t *testing.T) {
			k.stream = fmt.Sprintf("e2e:%d", time.Now().UnixNano())
			e := brokerEnv(t, fmt.Sprintf(`  - name: rs
    type: redis
    redis: {address: %q, stream: %q, dedup: %s}`, k.r.Addr(), k.stream, mode))
			e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('t.e', '/t', 'a', '{"agg":"a","seq":0}')`)
			out, code := e.backfill("--since", "2000-01-01")
			if mode == "auto" && code == 0 && !strings.Contains(out, "entryid") {
				t.Skipf("dedup auto resolved to a mode backfill can use on this Redis:\n%s", out)
			}
			if code != 1 {
				t.Fatalf("backfill exited %d, want 1:\n%s", code, out)
			}
			for _, w := range []string{"sink rs", `dedup "entryid"`, "dedup: guard"} {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			if n := len(k.readAll(t)); n != 0 {
				t.Errorf("%d entries written to %s by a refused backfill", n, k.stream)
			}
		})
	}
}

// fileEvent is one line of the file sink as a generic JSON object.
func fileEvents(t *testing.T, e *env) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range e.readEvents() {
		var m map[string]any
		if err := json.Unmarshal(d.raw, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// The table path and the WAL path make the same event: every attribute,
// extension and data byte equal, except pglsn, which only the WAL knows.
// Also the selections (--ids, --from/--to, --table, --sink), --dry-run, and
// an invalid row under the default block policy.
func TestBackfillIsTheStreamedEvent(t *testing.T) {
	e := newEnv(t, `outbox:
  tables:
    - name: public.outbox
    - name: public.outbox_bin
      default_source: /bin
      columns: {aggregate_type: "-", headers: "-"}
`)
	ctx := context.Background()
	// A second table with bytea data, a nullable source (default_source) and
	// a timestamp without time zone.
	e.exec(`ALTER TABLE outbox_bin ALTER COLUMN data TYPE bytea USING convert_to(data::text, 'UTF8'),
		ALTER COLUMN source DROP NOT NULL, ALTER COLUMN created_at TYPE timestamp,
		DROP COLUMN aggregate_type, DROP COLUMN headers`)
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, subject, aggregate_type, aggregate_id, data, datacontenttype, dataschema, headers, created_at) VALUES
		('com.example.a', '/shop', 'order/1', 'order', '1', '{"name": "café ☕", "n": 1.50, "z": null}', 'application/json', 'https://example.com/s.json',
		 '{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "priority": 5, "flag": true}', '2026-03-01 10:00:00.123456+00'),
		('com.example.b', '/shop', NULL, 'order', '1', NULL, NULL, NULL, NULL, '2026-03-02 10:00:00+00'),
		('com.example.c', '/shop', NULL, NULL, NULL, '"just a string"', 'application/json', NULL, '{}', '2026-03-03 10:00:00+00')`)
	e.exec(`INSERT INTO outbox_bin (type, source, aggregate_id, data, datacontenttype, created_at) VALUES
		('com.example.bin', NULL, 'b1', '\x00ff10', 'application/octet-stream', '2026-03-01 12:00:00.5')`)
	waitFor(t, 20*time.Second, "the streamed events", func() bool { return len(e.readEvents()) >= 4 })
	p.stop(t)
	streamed := fileEvents(t, e)
	if len(streamed) != 4 {
		t.Fatalf("%d events streamed, want 4", len(streamed))
	}
	byID := map[string]map[string]any{}
	idOf := map[string]string{} // type -> id
	for _, m := range streamed {
		byID[m["id"].(string)] = m
		idOf[m["type"].(string)] = m["id"].(string)
	}

	// --dry-run publishes nothing and prints what would go.
	out, code := e.backfill("--since", "2000-01-01", "--dry-run")
	if code != 0 {
		t.Fatalf("backfill --dry-run exited %d:\n%s", code, out)
	}
	for id := range byID {
		if !strings.Contains(out, id) {
			t.Errorf("dry run does not list event %s:\n%s", id, out)
		}
	}
	if n := len(e.readEvents()); n != 4 {
		t.Fatalf("dry run wrote %d events to the sink", n-4)
	}

	// Everything since a time, both tables: the same events but pglsn.
	out, code = e.backfill("--since", "2000-01-01")
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	all := fileEvents(t, e)
	if len(all) != 8 {
		t.Fatalf("%d events after the backfill, want 8:\n%s", len(all), out)
	}
	for _, m := range all[4:] {
		id, _ := m["id"].(string)
		s, ok := byID[id]
		if !ok {
			t.Fatalf("backfilled event %s was never streamed", id)
		}
		if _, ok := m["pglsn"]; ok {
			t.Errorf("backfilled event %s carries pglsn %v", id, m["pglsn"])
		}
		want := maps.Clone(s)
		delete(want, "pglsn")
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(m)
		if string(wb) != string(gb) {
			t.Errorf("event %s:\nstreamed   %s\nbackfilled %s", id, wb, gb)
		}
	}

	// A time range on the time column: [from, to).
	out, code = e.backfill("--from", "2026-03-02 00:00:00+00", "--to", "2026-03-03 10:00:00+00", "--table", "outbox")
	if code != 0 {
		t.Fatalf("backfill --from --to exited %d:\n%s", code, out)
	}
	all = fileEvents(t, e)
	if len(all) != 9 || all[8]["id"] != idOf["com.example.b"] {
		t.Fatalf("range backfill delivered %v, want only %s:\n%s", all[8:], idOf["com.example.b"], out)
	}

	// By id, in another table, through a named sink; an unknown id is named.
	missing := "00000000-0000-0000-0000-000000000000"
	out, code = e.backfill("--ids", idOf["com.example.bin"]+","+idOf["com.example.a"]+","+missing, "--sink", "audit")
	if code != 0 {
		t.Fatalf("backfill --ids exited %d:\n%s", code, out)
	}
	if !strings.Contains(out, missing) {
		t.Errorf("backfill --ids does not name the id it did not find:\n%s", out)
	}
	all = fileEvents(t, e)
	if len(all) != 11 {
		t.Fatalf("%d events after the id backfill, want 11:\n%s", len(all), out)
	}
	if _, code := e.backfill("--ids", idOf["com.example.a"], "--sink", "nope"); code != 1 {
		t.Errorf("backfill --sink nope exited %d, want 1", code)
	}
	if _, code := e.backfill("--since", "2000-01-01", "--ids", idOf["com.example.a"]); code != 2 {
		t.Errorf("backfill with two selections exited %d, want 2 (usage)", code)
	}

	// An invalid row stops the backfill under the default block policy,
	// named, with a non-zero exit.
	var bad string
	if err := e.pool.QueryRow(ctx, `INSERT INTO outbox (type, source, headers, created_at) VALUES ('com.example.bad', '/shop', '{"Not-Allowed": "x"}', '2026-04-01')
		RETURNING id::text`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	out, code = e.backfill("--since", "2026-04-01", "--table", "public.outbox")
	if code != 1 {
		t.Fatalf("backfill over an invalid row exited %d, want 1:\n%s", code, out)
	}
	for _, w := range []string{"public.outbox", bad, `"headers"`, "Not-Allowed"} {
		if !strings.Contains(out, w) {
			t.Errorf("output does not say %q:\n%s", w, out)
		}
	}
	// Under outbox.on_invalid: dead-letter the row is stored and the rest
	// goes on.
	e.exec(`INSERT INTO outbox (type, source, created_at) VALUES ('com.example.after', '/shop', '2026-04-02')`)
	out, err := e.cliEnv(ctx, []string{"OUTBOX_CDC_OUTBOX_ON_INVALID=dead-letter"}, "backfill", "--since", "2026-04-01", "--table", "public.outbox")
	if err != nil || !strings.Contains(out, "1 invalid rows stored as dead letters") {
		t.Fatalf("backfill under dead-letter: %v\n%s", err, out)
	}
	if ls := e.letters(t); len(ls) != 1 || ls[0].eventID != bad || ls[0].sink != "" {
		t.Errorf("dead letters %+v, want the row %s", ls, bad)
	}
	if all = fileEvents(t, e); all[len(all)-1]["type"] != "com.example.after" {
		t.Errorf("the row after the invalid one was not published under dead-letter")
	}
}

// Keyset paging over many pages keeps every row exactly once and the insert
// order per aggregate, where a transaction's rows share one created_at and
// span many heap pages (so their ctids do not sort as text).
func TestBackfillPagesInOrder(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	const n = 3000
	if err := produce(ctx, e, n, 1000, 7, 0, rand.New(rand.NewPCG(5, 5))); err != nil {
		t.Fatal(err)
	}
	out, code := e.backfill("--since", "2000-01-01", "--batch", "97")
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s", code, out)
	}
	evs := e.readEvents()
	_, count := checkDelivery(t, evs, n)
	for id, c := range count {
		if c != 1 {
			t.Fatalf("event %s backfilled %d times", id, c)
		}
	}
}
