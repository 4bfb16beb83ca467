package test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

type letter struct {
	id                 int64
	sink, eventID, lsn string
	errMsg, status     string
	attempts           int
}

func (e *env) letters(t *testing.T) []letter {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id, sink, event_id, commit_lsn::text, error, status, attempts FROM outbox_dead_letter ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []letter
	for rows.Next() {
		var l letter
		if err := rows.Scan(&l.id, &l.sink, &l.eventID, &l.lsn, &l.errMsg, &l.status, &l.attempts); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// Acceptance: rows that cannot become CloudEvents go to the dead-letter store
// with a message naming the column and the LSN, and the stream goes on; a
// kill -9 right after stores nothing twice.
func TestInvalidRowsAreDeadLettered(t *testing.T) {
	e := newEnv(t, "")
	e.exec("ALTER TABLE outbox ALTER COLUMN type DROP NOT NULL")
	e.exec("ALTER TABLE outbox ALTER COLUMN data TYPE text")
	e.exec("ALTER TABLE outbox ALTER COLUMN headers TYPE text")
	p := e.start("OUTBOX_CDC_OUTBOX_ON_INVALID=dead-letter")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('ok', '/t', 'a', '{"agg":"a","seq":0}')`)
	e.exec(`INSERT INTO outbox (type, source, data) VALUES (NULL, '/t', '{}')`)
	e.exec(`INSERT INTO outbox (type, source, data) VALUES ('bad.json', '/t', '{not json')`)
	e.exec(`INSERT INTO outbox (type, source, data, headers) VALUES ('bad.ext', '/t', '{}', '{"Bad-Name": "x"}')`)
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('ok', '/t', 'a', '{"agg":"a","seq":1}')`)
	waitFor(t, 15*time.Second, "the good events after the bad rows", func() bool { return e.countLines() >= 2 })
	p.kill() // right after: the dead letters are re-decoded and must not be stored twice
	p = e.start("OUTBOX_CDC_OUTBOX_ON_INVALID=dead-letter")
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('ok', '/t', 'a', '{"agg":"a","seq":2}')`)
	waitFor(t, 15*time.Second, "the event after the restart", func() bool {
		for _, d := range e.readEvents() {
			if strings.Contains(string(d.Data), `"seq":2`) {
				return true
			}
		}
		return false
	})
	checkDelivery(t, e.readEvents(), 3)
	ls := e.letters(t)
	if len(ls) != 3 {
		t.Fatalf("%d dead letters, want 3: %+v", len(ls), ls)
	}
	for i, want := range []string{`column "type"`, `column "data"`, `column "headers"`} {
		l := ls[i]
		if l.sink != "" || !strings.Contains(l.errMsg, want) || !strings.Contains(l.errMsg, "LSN "+l.lsn) || l.status != "pending" {
			t.Errorf("dead letter %d = %+v, want the decoder's error naming %s and LSN %s", i, l, want, l.lsn)
		}
	}
	p.stop(t)
	list, err := e.dlqCLI("list")
	if err != nil || strings.Count(list, "(decoder)") != 3 {
		t.Fatalf("dlq list (%v):\n%s", err, list)
	}
	show, err := e.dlqCLI("show", fmt.Sprint(ls[0].id))
	if err != nil || !strings.Contains(show, `column \"type\"`) || !strings.Contains(show, `"raw"`) {
		t.Fatalf("dlq show (%v):\n%s", err, show)
	}
}

// dlqCLI runs `outbox-cdc dlq <args> --config ...`.
func (e *env) dlqCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"dlq", args[0], "--config", e.cfgPath}, args[1:]...)
	out, err := execCommand(ctx, binary, full...).CombinedOutput()
	return string(out), err
}

// kafkaTopicLimit sets a topic's max.message.bytes.
func kafkaTopicLimit(t *testing.T, k *kafkaKit, limit int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.k.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	v := fmt.Sprint(limit)
	rs, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: &v}}, k.topic)
	if err == nil {
		for _, r := range rs {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// kafkaTooLarge streams small events around one too large for the topic.
func kafkaTooLarge(t *testing.T, policy string) (*env, *kafkaKit, *proc, string) {
	t.Helper()
	k := kafkaBroker(t).(*kafkaKit)
	y := k.sinkYAML("bus") + "\n      topic_config: {max.message.bytes: \"4096\"}\n    policy: " + policy + "\n    retry: {initial: 200ms, max: 1s}"
	e := brokerEnv(t, y)
	addr := httpAddr(t)
	p := e.start("OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_SINK_TIMEOUT=2s")
	waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'small', '/t', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series(0, 9) g`)
	e.exec(`INSERT INTO outbox (id, type, source, aggregate_id, data) VALUES ('00000000-0000-0000-0000-00000000b16e', 'big', '/t', 'b', jsonb_build_object('pad', repeat('x', 20000)))`)
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'small', '/t', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series(10, 19) g`)
	return e, k, p, addr
}

func smallOnes(t *testing.T, rs []received) []delivered {
	var out []delivered
	for _, d := range toDelivered(t, rs) {
		if d.Type == "small" {
			out = append(out, d)
		}
	}
	return out
}

// Acceptance: an event too large for the Kafka topic under dead-letter is
// stored with the broker's error, every later event is delivered, the slot
// advances; a replay after raising the limit delivers it once.
func TestTooLargeDeadLetteredAndReplayed(t *testing.T) {
	e, k, p, _ := kafkaTooLarge(t, "dead-letter")
	waitFor(t, time.Minute, "the dead letter", func() bool { return len(e.letters(t)) == 1 })
	waitFor(t, time.Minute, "every small event", func() bool { return len(smallOnes(t, k.readAll(t))) >= 20 })
	checkDelivery(t, smallOnes(t, k.readAll(t)), 20)
	l := e.letters(t)[0]
	if l.sink != "bus" || l.eventID != "00000000-0000-0000-0000-00000000b16e" || !strings.Contains(l.errMsg, "MESSAGE_TOO_LARGE") {
		t.Fatalf("dead letter = %+v", l)
	}
	end := e.currentLSN()
	waitFor(t, 30*time.Second, "the slot to advance past the dead letter", func() bool { c, _ := e.slot(); return c >= end })
	p.stop(t)

	kafkaTopicLimit(t, k, 1<<20)
	out, err := e.dlqCLI("replay", fmt.Sprint(l.id))
	if err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	n := 0
	for _, r := range k.readAll(t) {
		if r.ce.Type() == "big" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the replayed event is in the topic %d times, want 1", n)
	}
	if l := e.letters(t)[0]; l.status != "replayed" {
		t.Fatalf("after replay the letter is %q", l.status)
	}
}

// Acceptance: the same with block: nothing after it is lost, the slot holds,
// /readyz fails with the reason, and raising the limit drains it without a
// restart.
func TestTooLargeBlocksUntilFixed(t *testing.T) {
	e, k, p, addr := kafkaTooLarge(t, "block")
	waitFor(t, time.Minute, "the events before the big one", func() bool { return len(smallOnes(t, k.readAll(t))) >= 10 })
	held, _ := e.slot()
	waitFor(t, 30*time.Second, "/readyz to say why", func() bool {
		code, r := getReport(t, addr, "/readyz")
		s := failing(r)
		return code == 503 && strings.Contains(s, "sink:bus") && strings.Contains(s, "MESSAGE_TOO_LARGE")
	})
	time.Sleep(time.Second)
	if c, _ := e.slot(); c > held {
		t.Fatalf("the slot moved from %X to %X past a blocked event", held, c)
	}
	if n := len(e.letters(t)); n != 0 {
		t.Fatalf("%d dead letters under policy block", n)
	}
	kafkaTopicLimit(t, k, 1<<20)
	waitFor(t, time.Minute, "the blocked event and everything after it", func() bool {
		rs := k.readAll(t)
		big := false
		for _, r := range rs {
			big = big || r.ce.Type() == "big"
		}
		return big && len(smallOnes(t, rs)) >= 20
	})
	checkDelivery(t, smallOnes(t, k.readAll(t)), 20)
	end := e.currentLSN()
	waitFor(t, 30*time.Second, "the slot to catch up", func() bool { c, _ := e.slot(); return c >= end })
	waitFor(t, 10*time.Second, "/readyz to recover", func() bool { code, _ := getReport(t, addr, "/readyz"); return code == 200 })
	p.stop(t)
}

// Acceptance: an event larger than the NATS server's max_payload under
// dead-letter is stored with the server's error and later events go on; after
// the limit is raised, dlq replay delivers it once.
func TestNATSMaxPayloadDeadLetteredAndReplayed(t *testing.T) {
	ctx := context.Background()
	n, err := harness.StartNATS(ctx, harness.NATSOptions{MaxPayload: 8192})
	harness.SkipIfNotInstalled(t, "nats", err)
	defer n.Close()
	k := &natsKit{n: n}
	e := brokerEnv(t, k.sinkYAML("bus")+"\n    policy: dead-letter")
	p := e.start()
	waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data) SELECT 'small', '/t', 'o', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series(0, 9) g`)
	e.exec(`INSERT INTO outbox (id, type, source, aggregate_type, aggregate_id, data) VALUES ('00000000-0000-0000-0000-00000000b16e', 'big', '/t', 'o', 'b', jsonb_build_object('pad', repeat('x', 20000)))`)
	e.exec(`INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data) SELECT 'big', '/t', 'o', 'b', jsonb_build_object('pad', repeat('y', 20000), 'n', g) FROM generate_series(1, 199) g`)
	e.exec(`INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data) SELECT 'small', '/t', 'o', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series(10, 19) g`)
	waitFor(t, time.Minute, "the dead letters", func() bool { return len(e.letters(t)) == 200 })
	waitFor(t, time.Minute, "every small event", func() bool { return len(smallOnes(t, k.readAll(t))) >= 20 })
	checkDelivery(t, smallOnes(t, k.readAll(t)), 20)
	l := e.letters(t)[0]
	if l.sink != "bus" || l.eventID != "00000000-0000-0000-0000-00000000b16e" || !strings.Contains(strings.ToLower(l.errMsg), "payload") {
		t.Fatalf("dead letter = %+v", l)
	}
	end := e.currentLSN()
	waitFor(t, 30*time.Second, "the slot to advance past the dead letter", func() bool { c, _ := e.slot(); return c >= end })
	p.stop(t)

	// Raise max_payload: the harness reads its config file at each start.
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(filepath.Dir(n.StoreDir()), "nats.conf")
	writeFile(t, conf, strings.Replace(readFile(t, conf), "max_payload: 8192", "max_payload: 1048576", 1))
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := n.Start(sctx); err != nil {
		t.Fatal(err)
	}
	bigs := func() map[string]int {
		m := map[string]int{}
		for _, r := range k.readAll(t) {
			if r.ce.Type() == "big" {
				m[r.ce.ID()]++
			}
		}
		return m
	}
	// A replay killed with SIGKILL part-way, then run again: every letter
	// ends replayed, and the stream holds each event once (Nats-Msg-Id).
	killed := execCommand(ctx, binary, "dlq", "replay", "--all", "--config", e.cfgPath)
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Millisecond) {
		var n int
		if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM outbox_dead_letter WHERE status = 'replayed'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= 3 || time.Now().After(deadline) {
			break
		}
	}
	killed.Process.Kill()
	killed.Wait()
	pending := 0
	for _, l := range e.letters(t) {
		if l.status == "pending" {
			pending++
		}
	}
	t.Logf("after the SIGKILL: %d events in the stream, %d letters still pending", len(bigs()), pending)
	out, err := e.dlqCLI("replay", "--all")
	if err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	got := bigs()
	if len(got) != 200 {
		t.Fatalf("%d of 200 replayed events are in the stream", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("event %s is in the stream %d times, want 1", id, n)
		}
	}
	for _, l := range e.letters(t) {
		if l.status != "replayed" {
			t.Fatalf("letter %d is %s after the replays", l.id, l.status)
		}
	}
}

// deadLetterInvalid configures outbox-cdc to set aside rows and messages that
// cannot become events. The message path is on by default today; when it
// becomes opt-in, turn it on here too.
const deadLetterInvalid = "outbox: {on_invalid: dead-letter, messages: {enabled: true}}\n"

// cliLetter is one letter as `outbox-cdc dlq list --json` prints it.
type cliLetter struct {
	ID       int64              `json:"id"`
	Sink     string             `json:"sink"`
	EventID  string             `json:"event_id"`
	Event    json.RawMessage    `json:"event"`
	Raw      map[string]*string `json:"raw"`
	Error    string             `json:"error"`
	Attempts int                `json:"attempts"`
	Status   string             `json:"status"`
}

func (e *env) cliLetters(t *testing.T) []cliLetter {
	t.Helper()
	out, err := e.dlqCLI("list", "--json")
	if err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	var ls []cliLetter
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	return ls
}

// Regression (issue 9): two bad messages in one transaction became one
// letter, with attempts 2 and only the first one's content, while the log
// said both were stored. Each input is its own letter; the same input stored
// again after a restart adds no row.
func TestTwoBadInputsInOneTransactionAreTwoLetters(t *testing.T) {
	e := newEnv(t, deadLetterInvalid)
	// The gate withholds its acknowledgements, so the slot stays before the
	// transaction and a restart decodes it, and stores its letters, again.
	gate := &gateSink{}
	stop := runInProcess(t, e, outboxcdc.Options{Sinks: []outboxcdc.CustomSink{gate.custom("gate")}},
		"OUTBOX_CDC_POSTGRES_DRAIN_TIMEOUT=1s")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`BEGIN;
		SELECT pg_logical_emit_message(true, 'outbox', 'not json 1');
		SELECT pg_logical_emit_message(true, 'outbox', 'not json 2');
		INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('ok', '/t', 'a', '{"agg":"a","seq":0}');
		INSERT INTO outbox (type, source, data) VALUES ('', '/t', '{}');
		COMMIT`)
	end := e.currentLSN()
	waitFor(t, 15*time.Second, "the good event of the transaction", func() bool { return e.countLines() >= 1 })

	contents := func(ls []cliLetter) []string {
		var out []string
		for _, l := range ls {
			if l.Sink != "" {
				t.Fatalf("letter %d is for sink %q, want the decoder's", l.ID, l.Sink)
			}
			if c := l.Raw["content"]; c != nil {
				out = append(out, *c)
			} else if tp := l.Raw["type"]; tp != nil {
				out = append(out, "row type="+*tp)
			}
		}
		slices.Sort(out)
		return out
	}
	want := []string{"not json 1", "not json 2", "row type="}
	ls := e.cliLetters(t)
	if got := contents(ls); !slices.Equal(got, want) {
		t.Fatalf("%d letters with %q, want one per bad input: %q", len(ls), got, want)
	}
	if c, _ := e.slot(); c >= end {
		t.Fatalf("the slot passed the transaction (%X >= %X) while the gate held its event", c, end)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	p := e.start()
	waitFor(t, 20*time.Second, "the slot to pass the transaction after the restart", func() bool { c, _ := e.slot(); return c >= end })
	ls = e.cliLetters(t)
	if got := contents(ls); !slices.Equal(got, want) {
		t.Fatalf("after the restart: %d letters with %q, want the same %q", len(ls), got, want)
	}
	for _, l := range ls {
		if l.Attempts != 2 {
			t.Errorf("letter %d has attempts %d, want 2 (stored, then stored again after the restart)", l.ID, l.Attempts)
		}
	}
	p.stop(t)
}

// Regression (issue 9): an event whose JSON data holds the escape \u0000
// (legal JSON, refused by jsonb with SQLSTATE 22P05) could not be stored as a
// dead letter, and the sink retried storing it forever. The letter is stored
// as it is, the sink goes on, and a replay delivers the data intact.
func TestDeadLetterJSONBWouldRefuse(t *testing.T) {
	ctx := context.Background()
	n, err := harness.StartNATS(ctx, harness.NATSOptions{MaxPayload: 8192})
	harness.SkipIfNotInstalled(t, "nats", err)
	defer n.Close()
	k := &natsKit{n: n}
	e := brokerEnv(t, k.sinkYAML("bus")+"\n    policy: dead-letter")
	e.exec("ALTER TABLE outbox ALTER COLUMN data TYPE json")
	p := e.start()
	waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data) SELECT 'small', '/t', 'o', 'a', json_build_object('agg', 'a', 'seq', g) FROM generate_series(0, 4) g`)
	e.exec(`INSERT INTO outbox (id, type, source, aggregate_type, aggregate_id, data) VALUES ('00000000-0000-0000-0000-0000000000b0', 'big', '/t', 'o', 'b',
		('{"nul": "a\u0000b", "pad": "' || repeat('x', 20000) || '"}')::json)`)
	e.exec(`INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data) SELECT 'small', '/t', 'o', 'a', json_build_object('agg', 'a', 'seq', g) FROM generate_series(5, 9) g`)
	waitFor(t, 30*time.Second, "the dead letter", func() bool { return len(e.letters(t)) == 1 })
	waitFor(t, 30*time.Second, "every small event", func() bool { return len(smallOnes(t, k.readAll(t))) >= 10 })
	checkDelivery(t, smallOnes(t, k.readAll(t)), 10)
	end := e.currentLSN()
	waitFor(t, 30*time.Second, "the slot to advance past the dead letter", func() bool { c, _ := e.slot(); return c >= end })
	if strings.Contains(p.log(), "cannot store dead letter") {
		t.Errorf("the letter was refused before it was stored:\n%s", tail(p.log(), 20))
	}
	ls := e.cliLetters(t)
	var stored struct {
		Data struct{ Nul string } `json:"data"`
	}
	if len(ls) != 1 || json.Unmarshal(ls[0].Event, &stored) != nil || stored.Data.Nul != "a\x00b" {
		t.Fatalf("letters = %+v, want the event with its data as it was", ls)
	}
	p.stop(t)

	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(filepath.Dir(n.StoreDir()), "nats.conf")
	writeFile(t, conf, strings.Replace(readFile(t, conf), "max_payload: 8192", "max_payload: 1048576", 1))
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := n.Start(sctx); err != nil {
		t.Fatal(err)
	}
	if out, err := e.dlqCLI("replay", "--all"); err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	var big []received
	for _, r := range k.readAll(t) {
		if r.ce.Type() == "big" {
			big = append(big, r)
		}
	}
	var data struct{ Nul string }
	if len(big) != 1 || json.Unmarshal(big[0].ce.Data(), &data) != nil || data.Nul != "a\x00b" {
		t.Fatalf("after the replay the stream holds %d big events; want 1 with its data intact", len(big))
	}
}

// A dead-letter table made by an earlier version (jsonb event, key on sink,
// id and commit LSN) is refused by run with a message saying to run setup,
// and setup upgrades it in place, keeping its letters, as often as it runs.
func TestSetupUpgradesDeadLetterTable(t *testing.T) {
	e := newEnv(t, deadLetterInvalid)
	e.exec("DROP TABLE outbox_dead_letter")
	e.exec(readFile(t, "testdata/dead_letter_v1.sql"))
	e.exec(`INSERT INTO outbox_dead_letter (sink, event_id, source_table, commit_lsn, event, error)
		VALUES ('bus', 'e-1', 'public.outbox', '0/16B3748', '{"specversion":"1.0","id":"e-1","source":"/old","type":"t"}', 'too large')`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := e.cli(ctx, "run")
	if err == nil || !strings.Contains(out, "dead-letter table public.outbox_dead_letter was made by an earlier version of outbox-cdc: run `outbox-cdc setup`") {
		t.Fatalf("run on an old dead-letter table (%v):\n%s", err, out)
	}
	for i := 0; i < 2; i++ {
		if out, err := e.cli(ctx, "setup"); err != nil {
			t.Fatalf("setup %d: %v\n%s", i+1, err, out)
		}
	}
	ls := e.cliLetters(t)
	var ev struct{ Source string }
	if len(ls) != 1 || ls[0].EventID != "e-1" || json.Unmarshal(ls[0].Event, &ev) != nil || ev.Source != "/old" {
		t.Fatalf("letters after the upgrade = %+v", ls)
	}
	var source, keys string
	if err := e.pool.QueryRow(ctx, `SELECT event_source, (SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY 1) FROM pg_index
		WHERE indrelid = 'outbox_dead_letter'::regclass AND indisunique AND NOT indisprimary) FROM outbox_dead_letter`).Scan(&source, &keys); err != nil {
		t.Fatal(err)
	}
	if source != "/old" || keys != "outbox_dead_letter_event_key,outbox_dead_letter_input_key" {
		t.Fatalf("after the upgrade: event_source %q, unique keys %q", source, keys)
	}
	// The upgraded table takes letters: the stream runs and stores one.
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`SELECT pg_logical_emit_message(true, 'outbox', 'not json')`)
	waitFor(t, 10*time.Second, "the new letter", func() bool { return len(e.letters(t)) == 2 })
	p.stop(t)
}
