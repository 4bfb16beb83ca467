package redis

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{"zero value", Config{}, ""},
		{"full", Config{Address: "redis.internal:6380", Username: "u", Password: "p", DB: 3, Stream: "s:{{.Type}}", MaxLen: 10,
			ContentMode: ContentStructured, Dedup: DedupGuard, GuardTTL: time.Hour, BatchSize: 10, MaxInFlight: 10,
			TLS: TLSConfig{Enabled: true, CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem"}}, ""},
		{"address without port", Config{Address: "localhost"}, "address"},
		{"negative db", Config{DB: -1}, "db"},
		{"bad template", Config{Stream: "{{.Nope}}"}, "stream"},
		{"negative maxlen", Config{MaxLen: -1}, "maxlen"},
		{"content mode", Config{ContentMode: "xml"}, "content_mode"},
		{"dedup", Config{Dedup: "maybe"}, "dedup"},
		{"guard ttl", Config{GuardTTL: time.Microsecond}, "guard_ttl"},
		{"batch", Config{BatchSize: -1}, "batch_size"},
		{"in flight below batch", Config{BatchSize: 100, MaxInFlight: 10}, "max_in_flight"},
		{"cert without key", Config{TLS: TLSConfig{Enabled: true, CertFile: "c.pem"}}, "key_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate: %v, want an error about %s", err, tc.wantErr)
			}
		})
	}
}

// crc16 is Redis Cluster's key hash (CRC16-CCITT, XMODEM).
func crc16(b string) uint16 {
	var crc uint16
	for i := 0; i < len(b); i++ {
		crc ^= uint16(b[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slot is the cluster slot of key, per the Redis Cluster specification.
func slot(key string) uint16 {
	if tag, ok := hashTag(key); ok {
		key = tag
	}
	return crc16(key) % 16384
}

// TestGuardKeySlot: a guard key hashes to the slot of its stream, with and
// without a hash tag in the stream name.
func TestGuardKeySlot(t *testing.T) {
	t.Parallel()
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16 test vector: %#x, want 0x31c3", got)
	}
	for _, tc := range []struct {
		stream, want string
		sameSlot     bool
	}{
		{"outbox:order", "{outbox:order}" + guardInfix + "/s|e1", true},
		{"outbox{order", "{outbox{order}" + guardInfix + "/s|e1", true},
		{"outbox:{tenant7}:order", "{tenant7}" + guardInfixIn + "22:outbox:{tenant7}:order:/s|e1", true},
		{"{a}{b}", "{a}" + guardInfixIn + "6:{a}{b}:/s|e1", true},
		{"x{}y", "{}" + guardInfixIn + "4:x{}y:/s|e1", false}, // empty tag: no slot to share
		{"a}b", "{}" + guardInfixIn + "3:a}b:/s|e1", false},
	} {
		got := string(appendGuardKey(nil, tc.stream, "/s|e1"))
		if got != tc.want {
			t.Errorf("guard key of %q: %q, want %q", tc.stream, got, tc.want)
		}
		if tc.sameSlot && slot(got) != slot(tc.stream) {
			t.Errorf("guard key %q in slot %d, stream %q in slot %d", got, slot(got), tc.stream, slot(tc.stream))
		}
	}
}

// FuzzGuardKey: two different (stream, source, id) never share a guard key
// (short of a SHA-256 collision between long dedup keys).
func FuzzGuardKey(f *testing.F) {
	f.Add("outbox:order", "/s", "1", "outbox:order}", "/s", "1")
	f.Add("{t}a", "/s", "1", "t", "3:{t}a:/s", "1")
	f.Add("t", "/x", "1", "{t}", "/x", "1")
	f.Fuzz(func(t *testing.T, stream1, source1, id1, stream2, source2, id2 string) {
		if stream1 == stream2 && source1 == source2 && id1 == id2 {
			return
		}
		k1 := appendGuardKey(nil, stream1, event.DedupKey(source1, id1))
		k2 := appendGuardKey(nil, stream2, event.DedupKey(source2, id2))
		if string(k1) == string(k2) {
			t.Fatalf("(%q, %q, %q) and (%q, %q, %q) share the guard key %q", stream1, source1, id1, stream2, source2, id2, k1)
		}
	})
}

// TestXAddArgs compares the XADD arguments of every mode with what go-redis
// itself builds for the same options (its IDMP syntax included: Redis 8.6 is
// not available to test against here).
func TestXAddArgs(t *testing.T) {
	t.Parallel()
	e := &event.Event{ID: "ev-1", Source: "/src", CommitLSN: 42, Seq: 3}
	r := &record{e: e, stream: "s", id: "42-3", key: e.DedupKey(), vals: []any{"id", &e.ID, "data", "x"}}
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	pipe := client.Pipeline()
	ctx := context.Background()
	for _, tc := range []struct {
		dedup string
		cfg   Config
		want  *goredis.XAddArgs
	}{
		{DedupNone, Config{}, &goredis.XAddArgs{Stream: "s"}},
		{DedupEntryID, Config{}, &goredis.XAddArgs{Stream: "s", ID: "42-3"}},
		{DedupIDMP, Config{}, &goredis.XAddArgs{Stream: "s", ProducerID: "pid", IdempotentID: "/src|ev-1"}},
		{DedupIDMP, Config{MaxLen: 100, NoMkStream: true}, &goredis.XAddArgs{Stream: "s", ProducerID: "pid", IdempotentID: "/src|ev-1", MaxLen: 100, Approx: true, NoMkStream: true}},
		{DedupEntryID, Config{MaxLen: 100}, &goredis.XAddArgs{Stream: "s", ID: "42-3", MaxLen: 100, Approx: true}},
	} {
		s := &Sink{cfg: tc.cfg, dedup: tc.dedup, pid: "pid", maxlen: fmt.Sprint(tc.cfg.MaxLen)}
		tc.want.Values = []any{"id", "ev-1", "data", "x"}
		want := pipe.XAdd(ctx, tc.want).Args()
		got := s.appendXAdd(nil, r)
		if g, w := argStrings(got), argStrings(want); !slices.Equal(g, w) {
			t.Errorf("%s %+v: args %q, want %q", tc.dedup, tc.cfg, g, w)
		}
	}
}

func argStrings(args []any) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if p, ok := a.(*string); ok {
			a = *p
		}
		out[i] = strings.ToLower(fmt.Sprint(a))
	}
	return out
}

// TestClassify: each Redis reply (and each error that is no reply) maps to
// permanent or transient once, at the boundary, for sink.IsPermanent;
// NOSCRIPT is transient and recognised, so the script is loaded again.
func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err       error
		permanent bool
		noScript  bool
	}{
		{io.EOF, false, false},
		{context.DeadlineExceeded, false, false},
		{context.Canceled, false, false},
		{goredis.ErrClosed, false, false},
		{goredis.Nil, true, false},
		{newServerError("LOADING Redis is loading the dataset in memory", nil), false, false},
		{newServerError("BUSY Redis is busy running a script", nil), false, false},
		{newServerError("OOM command not allowed when used memory > 'maxmemory'.", nil), false, false},
		{newServerError("READONLY You can't write against a read only replica.", nil), false, false},
		{newServerError("CLUSTERDOWN The cluster is down", nil), false, false},
		{newServerError("TRYAGAIN Multiple keys request during rehashing of slot", nil), false, false},
		{newServerError("MISCONF Redis is configured to save RDB snapshots", nil), false, false},
		{newServerError("NOSCRIPT No matching script.", nil), false, true},
		{newServerError("WRONGTYPE Operation against a key holding the wrong kind of value", nil), true, false},
		{newServerError("NOPERM this user has no permissions to access one of the keys", nil), true, false},
		{newServerError("CROSSSLOT Keys in request don't hash to the same slot", nil), true, false},
		{newServerError("ERR syntax error", nil), true, false},
		{newServerError("ERR max number of clients reached", nil), false, false},
		{fmt.Errorf("wrapped: %w", newServerError("LOADING x", nil)), false, false},
	} {
		c := classify(tc.err)
		if got := sink.IsPermanent(c); got != tc.permanent {
			t.Errorf("classify(%v): permanent %v, want %v", tc.err, got, tc.permanent)
		}
		if got := isNoScript(tc.err); got != tc.noScript {
			t.Errorf("isNoScript(%v) = %v, want %v", tc.err, got, tc.noScript)
		}
	}
}

func TestEntryIDs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1-0", "1-0", 0},
		{"9-5", "10-0", -1},
		{"23803720-2", "23803720-10", -1},
		{"18446744073709551615-0", "1-0", 1},
	} {
		if got := compareEntryIDs(tc.a, tc.b); got != tc.want {
			t.Errorf("compareEntryIDs(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	e := &event.Event{CommitLSN: 0x16B3748, Seq: 7}
	if got := string(appendEntryID(nil, e)); got != "23803720-7" {
		t.Errorf("entry id %s", got)
	}
}

func TestVersionAtLeast(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"7.0.15", false}, {"8.4.0", false}, {"8.6.0", true}, {"8.10.1", true}, {"9.0.0", true}, {"unknown", false}, {"", false},
	} {
		if got := versionAtLeast(tc.v, 8, 6); got != tc.want {
			t.Errorf("versionAtLeast(%q) = %v", tc.v, got)
		}
	}
}

// TestEncodeAllocs: once a record is warm, encoding an event into it
// allocates nothing, in every mode.
func TestEncodeAllocs(t *testing.T) {
	tmpl, err := sink.ParseTemplate("outbox:{{.AggregateType}}")
	if err != nil {
		t.Fatal(err)
	}
	evs := makeEvents("al", 256, 8, []string{"a", "b"})
	for _, enc := range []encoder{{stream: tmpl}, {stream: tmpl, structured: true}, {stream: tmpl, guard: true}, {stream: tmpl, idmp: true}, {stream: tmpl, entryID: true}} {
		var r record
		for _, e := range evs {
			if err := enc.encode(e, &r); err != nil {
				t.Fatal(err)
			}
			r.reset()
		}
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			_ = enc.encode(evs[i%len(evs)], &r)
			r.reset()
			i++
		})
		if allocs > 0 {
			t.Errorf("encoder %+v: %.2f allocations per event", enc, allocs)
		}
	}
	bad := &event.Event{ID: "x", Extensions: []event.Extension{{Name: "id", Value: "clash"}}}
	tmplStatic, _ := sink.ParseTemplate("s")
	var r record
	if err := (&encoder{stream: tmplStatic}).encode(bad, &r); err == nil {
		t.Error("an extension named like a field was accepted")
	}
	r.reset()
	if err := (&encoder{stream: tmplStatic, entryID: true}).encode(&event.Event{ID: "y"}, &r); err == nil {
		t.Error("entryid accepted an event without a commit LSN")
	}
}
