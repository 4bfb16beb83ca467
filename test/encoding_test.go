package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// newEncodedEnv is newEnv for a new database in server encoding enc (C
// locale, from template0).
func newEncodedEnv(t *testing.T, enc, extra string) *env {
	t.Helper()
	db := createEncodedDB(t, enc)
	return setupEnv(t, db, extra)
}

func createEncodedDB(t *testing.T, enc string) string {
	t.Helper()
	p := needPostgres(t)
	db := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	sql := fmt.Sprintf("CREATE DATABASE %s ENCODING '%s' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'", db, enc)
	if err := p.Exec(context.Background(), "postgres", sql); err != nil {
		t.Fatal(err)
	}
	return db
}

// checkLinesUTF8 fails unless every line of the file sink is valid UTF-8
// and an I-JSON text (no duplicate member names, no lone surrogates).
func checkLinesUTF8(t *testing.T, e *env) {
	t.Helper()
	b, err := os.ReadFile(e.outPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if !utf8.Valid(line) {
			t.Fatalf("line %d is not valid UTF-8:\n%q", i+1, line)
		}
		if reason := ijsonProblem(line); reason != "" {
			t.Fatalf("line %d is not I-JSON: %s\n%s", i+1, reason, line)
		}
	}
}

// loneSurrogate returns the first \uXXXX escape of a surrogate that is not
// part of a high-low pair, or "".
func loneSurrogate(b []byte) string {
	hex4 := func(i int) (int64, bool) {
		if i+4 > len(b) {
			return 0, false
		}
		v, err := strconv.ParseInt(string(b[i:i+4]), 16, 32)
		return v, err == nil
	}
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] != 'u' {
			i++ // an escaped character, maybe a backslash
			continue
		}
		v, ok := hex4(i + 2)
		if !ok {
			continue
		}
		switch {
		case v >= 0xd800 && v < 0xdc00:
			lo, ok := hex4(i + 8)
			if i+7 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' || !ok || lo < 0xdc00 || lo > 0xdfff {
				return string(b[i : i+6])
			}
			i += 11
		case v >= 0xdc00 && v <= 0xdfff:
			return string(b[i : i+6])
		default:
			i += 5
		}
	}
	return ""
}

// ijsonProblem reads b with encoding/json's tokenizer and reports duplicate
// member names and lone surrogate escapes (which encoding/json would turn
// into U+FFFD silently).
func ijsonProblem(b []byte) string {
	if m := loneSurrogate(b); m != "" {
		return "lone surrogate escape " + m
	}
	if bytes.Contains(b, []byte(`\ufffd`)) || bytes.Contains(b, []byte("\uFFFD")) {
		return "U+FFFD in output: something was replaced"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func() string
	walk = func() string {
		tok, err := dec.Token()
		if err != nil {
			return err.Error()
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err.Error()
				}
				if seen[k.(string)] {
					return fmt.Sprintf("duplicate member name %q", k)
				}
				seen[k.(string)] = true
				if r := walk(); r != "" {
					return r
				}
			}
			dec.Token()
		case json.Delim('['):
			for dec.More() {
				if r := walk(); r != "" {
					return r
				}
			}
			dec.Token()
		}
		return ""
	}
	if r := walk(); r != "" {
		return r
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "trailing data"
	}
	return ""
}

// waitExit waits for `run` to stop by itself and returns its log.
func waitExit(t *testing.T, p *proc, within time.Duration) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("outbox-cdc did not stop within %v; log:\n%s", within, tail(p.log(), 30))
	}
	if p.err == nil {
		t.Fatalf("outbox-cdc exited 0, want a failure; log:\n%s", tail(p.log(), 30))
	}
	return p.log()
}

// K3: text in a database whose server encoding is not UTF8 reaches every
// sink as UTF-8, converted from the server encoding, in tuple text (text,
// jsonb, headers) and in logical messages alike.
func TestServerEncodingsAreConvertedToUTF8(t *testing.T) {
	for _, c := range []struct{ enc, word string }{
		{"LATIN1", "café ÿ ß × Ø"},
		{"WIN1252", "café € “quoted” Œ ‰"},
		{"EUC_JP", "café 日本語 ｶﾅ ①"},
	} {
		t.Run(c.enc, func(t *testing.T) {
			e := newEncodedEnv(t, c.enc, "outbox: {messages: {enabled: true}}\n")
			var back []byte
			if err := e.pool.QueryRow(context.Background(), "SELECT convert_to($1::text, 'UTF8')", c.word).Scan(&back); err != nil || string(back) != c.word {
				t.Fatalf("the server does not round-trip %q in %s: %q, %v", c.word, c.enc, back, err)
			}
			p := e.start()
			waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
			e.exec(`INSERT INTO outbox (id, type, source, subject, aggregate_id, data)
				VALUES ('00000000-0000-0000-0000-000000000009', 'com.example.row', '/s', $1, $1, jsonb_build_object('name', $1::text))`, c.word)
			e.exec(`INSERT INTO outbox (id, type, source, subject, aggregate_id, data, headers)
				VALUES ('00000000-0000-0000-0000-00000000000a', 'com.example.row', '/s', $1, $1, jsonb_build_object('name', $1::text), jsonb_build_object('note', $1::text))`, c.word)
			msg, _ := json.Marshal(map[string]any{"id": "msg-" + c.word, "type": "com.example.m", "source": "/s", "subject": c.word, "data": map[string]string{"name": c.word}})
			e.exec(`SELECT pg_logical_emit_message(true, 'outbox', $1::text)`, string(msg))
			waitFor(t, 15*time.Second, "3 events", func() bool { return e.countLines() >= 3 })
			checkLinesUTF8(t, e)
			evs := e.readEvents()
			if len(evs) != 3 {
				t.Fatalf("%d events, want 3", len(evs))
			}
			for _, d := range evs {
				var full struct {
					Subject string `json:"subject"`
					Note    string `json:"note"`
					Data    struct {
						Name string `json:"name"`
					} `json:"data"`
				}
				if err := json.Unmarshal(d.raw, &full); err != nil {
					t.Fatal(err)
				}
				if full.Subject != c.word || full.Data.Name != c.word {
					t.Errorf("event %q: subject %q, data.name %q, want %q (% x)", d.ID, full.Subject, full.Data.Name, c.word, c.word)
				}
				if d.Type == "com.example.row" && (d.PartitionKey != c.word || (d.ID == "00000000-0000-0000-0000-00000000000a" && full.Note != c.word)) {
					t.Errorf("row event: partitionkey %q, note %q, want %q", d.PartitionKey, full.Note, c.word)
				}
				if d.Type == "com.example.m" && d.ID != "msg-"+c.word {
					t.Errorf("message event id %q, want %q", d.ID, "msg-"+c.word)
				}
			}
			p.stop(t)
		})
	}
}

// K3: relation and column names come through the protocol in the server
// encoding too; a table and a column with non-ASCII names are matched, and
// a dead letter written to a LATIN1 database keeps its text intact.
func TestServerEncodingNames(t *testing.T) {
	e := newEncodedEnv(t, "LATIN1", `outbox:
  on_invalid: dead-letter
  tables:
    - name: public.boîte
      columns: {subject: "résumé"}
`)
	e.exec(`ALTER TABLE "boîte" RENAME COLUMN subject TO "résumé"`)
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO "boîte" (type, source, "résumé", data) VALUES ('com.example.ok', '/s', 'Zoë', '{"n":"Zoë"}')`)
	e.exec(`INSERT INTO "boîte" (id, type, source, "résumé") VALUES ('00000000-0000-0000-0000-0000000000b1', 'com.example.bad', '/café', 'Zoë')`)
	e.exec(`INSERT INTO "boîte" (type, source, "résumé") VALUES ('com.example.after', '/s', 'après')`)
	waitFor(t, 15*time.Second, "2 events", func() bool { return e.countLines() >= 2 })
	checkLinesUTF8(t, e)
	evs := e.readEvents()
	if len(evs) != 2 || evs[0].Subject != "Zoë" || evs[1].Subject != "après" {
		t.Fatalf("events %+v, want subjects Zoë and après", evs)
	}
	waitFor(t, 10*time.Second, "the dead letter", func() bool { return len(e.letters(t)) == 1 })
	var subject, table string
	if err := e.pool.QueryRow(context.Background(), `SELECT convert_from(raw, 'UTF8')::jsonb->>'résumé', source_table FROM outbox_dead_letter`).Scan(&subject, &table); err != nil {
		t.Fatal(err)
	}
	if subject != "Zoë" || table != "public.boîte" {
		t.Fatalf("dead letter keeps résumé %q from table %q, want Zoë from public.boîte", subject, table)
	}
	if l := e.letters(t)[0]; !strings.Contains(l.errMsg, `column "source"`) || !strings.Contains(l.errMsg, "URI") {
		t.Fatalf("dead letter error %q, want it to name column source and URI", l.errMsg)
	}
	p.stop(t)
}

// K3: under SQL_ASCII the server stores any bytes; bytes that are not UTF-8
// are an invalid row under outbox.on_invalid, never a U+FFFD.
func TestSQLASCIIInvalidBytes(t *testing.T) {
	bad := `INSERT INTO outbox (id, type, source, subject) VALUES ('00000000-0000-0000-0000-0000000000e9', 'com.example.bad', '/s', convert_from('\x636166e9'::bytea, 'SQL_ASCII'))`
	good := func(e *env, subject string) {
		e.exec(`INSERT INTO outbox (type, source, subject) VALUES ('com.example.ok', '/s', $1)`, subject)
	}
	t.Run("block", func(t *testing.T) {
		e := newEncodedEnv(t, "SQL_ASCII", "")
		p := e.start()
		waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		good(e, "café")
		waitFor(t, 10*time.Second, "the first event", func() bool { return e.countLines() >= 1 })
		before := e.currentLSN()
		e.exec(bad)
		good(e, "after")
		log := waitExit(t, p, 20*time.Second)
		for _, want := range []string{"public.outbox row 00000000-0000-0000-0000-0000000000e9", `column "subject"`, "SQL_ASCII", "UTF-8"} {
			if !strings.Contains(log, want) {
				t.Errorf("log does not say %q:\n%s", want, tail(log, 20))
			}
		}
		if c, _ := e.slot(); c > before {
			t.Errorf("confirmed_flush_lsn %X passed the invalid row (written after %X)", c, before)
		}
		checkLinesUTF8(t, e)
		if evs := e.readEvents(); len(evs) != 1 || evs[0].Subject != "café" {
			t.Fatalf("events %+v, want only the first (subject café)", evs)
		}
	})
	t.Run("dead-letter", func(t *testing.T) {
		e := newEncodedEnv(t, "SQL_ASCII", "outbox: {on_invalid: dead-letter, messages: {enabled: true}}\n")
		p := e.start()
		waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		good(e, "café")
		e.exec(bad)
		e.exec(`SELECT pg_logical_emit_message(true, 'outbox', '\x7b226964223a226d2d6539222c2274797065223a2274222c22736f75726365223a222f73222c2264617461223a7b226e223a22e9227d7d'::bytea)`)
		good(e, "after")
		waitFor(t, 15*time.Second, "2 events", func() bool { return e.countLines() >= 2 })
		waitFor(t, 10*time.Second, "2 dead letters", func() bool { return len(e.letters(t)) == 2 })
		checkLinesUTF8(t, e)
		ls := e.letters(t)
		if !strings.Contains(ls[0].errMsg, `column "subject"`) || ls[0].eventID != "00000000-0000-0000-0000-0000000000e9" {
			t.Errorf("row letter %+v, want the row id and column subject", ls[0])
		}
		if !strings.Contains(ls[1].errMsg, "message outbox") || !strings.Contains(ls[1].errMsg, "UTF-8") {
			t.Errorf("message letter %+v, want it named as a message that is not UTF-8", ls[1])
		}
		var raw string
		if err := e.pool.QueryRow(context.Background(), `SELECT convert_from(raw, 'UTF8')::jsonb->>'subject' FROM outbox_dead_letter WHERE event_id = '00000000-0000-0000-0000-0000000000e9'`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if raw != `\x636166e9` {
			t.Errorf("dead letter keeps subject %q, want the exact bytes as \\x636166e9", raw)
		}
		p.stop(t)
	})
}

// K3: a database in an encoding outbox-cdc cannot convert is refused by
// setup and run with the encoding's name and the supported list.
func TestUnsupportedServerEncodingIsNamed(t *testing.T) {
	p := needPostgres(t)
	db := createEncodedDB(t, "MULE_INTERNAL")
	t.Cleanup(func() {
		p.Exec(context.Background(), db, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
	})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "outbox-cdc.yaml")
	writeFile(t, cfg, fmt.Sprintf("postgres: {url: %q}\nsinks: [{name: f, type: file, path: %q}]\nhttp: {addr: \"-\"}\n", p.URL(db), filepath.Join(dir, "out")))
	for _, cmd := range []string{"setup", "run"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := execCommand(ctx, binary, cmd, "--config", cfg).CombinedOutput()
		cancel()
		if err == nil {
			t.Fatalf("%s: exit 0 on a MULE_INTERNAL database:\n%s", cmd, out)
		}
		for _, want := range []string{"MULE_INTERNAL", "LATIN1", "UTF8"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: output does not name %s:\n%s", cmd, want, out)
			}
		}
	}
}

// Issue 9: data, headers and URI attributes that are not valid in the
// CloudEvents JSON format (RFC 8259 / I-JSON RFC 7493) are refused by name,
// from every column type the decoder accepts and from logical messages; a
// bytea value under a JSON content type that is not I-JSON is carried as
// data_base64, byte for byte.
func TestIJSONViolationsAreRefused(t *testing.T) {
	e := newEnv(t, `outbox:
  on_invalid: dead-letter
  messages: {enabled: true}
  tables:
    - {name: public.outbox}
    - {name: public.outbox_json}
    - {name: public.outbox_text}
    - {name: public.outbox_bytea}
`)
	e.exec(`ALTER TABLE outbox_json ALTER COLUMN data TYPE json, ALTER COLUMN headers TYPE json`)
	e.exec(`ALTER TABLE outbox_text ALTER COLUMN data TYPE text, ALTER COLUMN headers TYPE text`)
	e.exec(`ALTER TABLE outbox_bytea ALTER COLUMN data TYPE bytea USING convert_to(data::text, 'UTF8')`)
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })

	type want struct{ column, reason string }
	bad := map[string]want{} // event id → what the letter must say
	n := 0
	row := func(table, source, data, headers, schema string, w *want) {
		n++
		id := fmt.Sprintf("00000000-0000-0000-0000-%012d", n)
		var h, s *string
		if headers != "" {
			h = &headers
		}
		if schema != "" {
			s = &schema
		}
		e.exec(`INSERT INTO `+table+` (id, type, source, data, headers, dataschema) VALUES ($1, 'com.example.t', $2, $3, $4, $5)`, id, source, data, h, s)
		if w != nil {
			bad[id] = *w
		}
	}
	for _, table := range []string{"outbox_json", "outbox_text"} {
		row(table, "/s", `{"a":1,"a":2}`, "", "", &want{"data", "duplicate"})
		row(table, "/s", `{"x":{"b":1,"b":1}}`, "", "", &want{"data", "duplicate"})
		row(table, "/s", `{"a":1,"\u0061":2}`, "", "", &want{"data", "duplicate"})
		row(table, "/s", `{"a":"\ud800"}`, "", "", &want{"data", "surrogate"})
		row(table, "/s", `["\udc00x"]`, "", "", &want{"data", "surrogate"})
		row(table, "/s", `{}`, `{"tenant":"a","tenant":"b"}`, "", &want{"headers", "duplicate"})
		row(table, "/s", `{}`, `{"tenant":"\ud800"}`, "", &want{"headers", "surrogate"})
		row(table, "/s", `{"ok":"\ud83d\ude00"}`, "", "", nil)
	}
	row("outbox", "/s", `{"a":"\uffff"}`, "", "", &want{"data", "noncharacter"})
	row("outbox", "/café", `{}`, "", "", &want{"source", "URI"})
	row("outbox", "/a|b", `{}`, "", "", &want{"source", "URI"})
	row("outbox", "/s", `{}`, "", "https://example.com/{x}", &want{"dataschema", "URI"})
	row("outbox", "/s", `{}`, `{"dataref":"/a|b"}`, "", &want{"headers", "URI"})
	row("outbox", "/s", `{"ok":"\ud83d\ude00"}`, `{"dataref":"https://example.com/d"}`, "https://example.com/s.json#/a", nil)
	e.exec(`INSERT INTO outbox_bytea (id, type, source, data) VALUES ('00000000-0000-0000-0000-0000000000b1', 'com.example.bin', '/s', convert_to('{"a":1,"a":2}', 'UTF8'))`)
	e.exec(`INSERT INTO outbox_bytea (id, type, source, data) VALUES ('00000000-0000-0000-0000-0000000000b2', 'com.example.bin', '/s', '\x7b226e223a22e9227d'::bytea)`)
	msg := func(content string, w *want, id string) {
		e.exec(`SELECT pg_logical_emit_message(true, 'outbox', $1::text)`, content)
		if w != nil {
			bad[id] = *w
		}
	}
	msg(`{"id":"m-dup","id":"m-dup","type":"t","source":"/s"}`, &want{"", "duplicate"}, "m-dup")
	msg(`{"id":"m-ddup","type":"t","source":"/s","data":{"a":1,"a":2}}`, &want{"", "duplicate"}, "m-ddup")
	msg(`{"id":"m-sur","type":"t","source":"/s","subject":"\ud800"}`, &want{"", "surrogate"}, "m-sur")
	msg(`{"id":"m-uri","type":"t","source":"/a|b"}`, &want{"source", "URI"}, "m-uri")
	msg(`{"id":"m-ok","type":"t","source":"/s","data":{"ok":"\ud83d\ude00"}}`, nil, "")
	e.exec(`SELECT pg_logical_emit_message(true, 'outbox', '\x7b226964223a226d2d75746638222c2274797065223a2274222c22736f75726365223a222f73222c2264617461223a7b226e223a22e9227d7d'::bytea)`)
	bad["m-utf8"] = want{"", "UTF-8"}

	const good = 6 // two tables × 1, outbox × 1, bytea × 2, one message
	waitFor(t, 20*time.Second, fmt.Sprintf("%d dead letters", len(bad)), func() bool { return len(e.letters(t)) >= len(bad) })
	waitFor(t, 10*time.Second, fmt.Sprintf("%d events", good), func() bool { return e.countLines() >= good })
	checkLinesUTF8(t, e)
	evs := e.readEvents()
	for _, d := range evs {
		if _, isBad := bad[d.ID]; isBad {
			t.Errorf("refused input %s was delivered:\n%s", d.ID, d.raw)
		}
		if d.Type == "com.example.bin" && (!bytes.Contains(d.raw, []byte(`"data_base64"`)) || d.Data != nil) {
			t.Errorf("bytea that is not I-JSON must travel as data_base64:\n%s", d.raw)
		}
	}
	if len(evs) != good {
		t.Errorf("%d events delivered, want %d", len(evs), good)
	}
	ls := e.letters(t)
	seen := map[string]bool{}
	for _, l := range ls {
		w, ok := bad[l.eventID]
		if !ok {
			t.Errorf("unexpected dead letter %+v", l)
			continue
		}
		seen[l.eventID] = true
		if (w.column != "" && !strings.Contains(l.errMsg, fmt.Sprintf("%q", w.column))) || !strings.Contains(l.errMsg, w.reason) {
			t.Errorf("dead letter for %s says %q; want column %q and %q", l.eventID, l.errMsg, w.column, w.reason)
		}
	}
	for id := range bad {
		if !seen[id] {
			t.Errorf("no dead letter for %s (%+v)", id, bad[id])
		}
	}
	p.stop(t)
}
