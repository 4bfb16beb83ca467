package nats

import "testing"

// The scanner reads exactly the PubAcks nats-server writes for a stored
// message and a duplicate (stream.go: mset.pubAck, then the sequence, then
// "}" or ",\"duplicate\": true}"), and leaves every other shape to
// encoding/json: errors, a domain, a counter's value, anything unexpected.
func TestScanPubAck(t *testing.T) {
	for _, c := range []struct {
		in      string
		seq     uint64
		dup, ok bool
	}{
		{`{"stream":"ORDERS", "seq":42}`, 42, false, true},
		{`{"stream":"ORDERS","seq":42}`, 42, false, true},
		{`{"stream":"ORDERS", "seq":7,"duplicate": true}`, 7, true, true},
		{`{"stream":"ORDERS","seq":7,"duplicate":true}`, 7, true, true},
		{`{"stream":"ORDERS", "seq":18446744073709551615}`, 18446744073709551615, false, true},
		// Left to encoding/json.
		{`{"stream":"ORDERS", "seq":7,"duplicate": false}`, 0, false, false},
		{`{"stream":"ORDERS", "domain":"hub", "seq":42}`, 0, false, false},
		{`{"stream":"ORDERS", "seq":42, "domain":"hub"}`, 0, false, false},
		{`{"stream":"ORDERS", "seq":42,"val":"3"}`, 0, false, false},
		{`{"error":{"code":400,"err_code":10070,"description":"wrong last msg ID: x"},"stream":"ORDERS","seq":0}`, 0, false, false},
		{`{"stream":"ORDERS","seq":0,"error":{"code":503}}`, 0, false, false},
		{`{"stream":"", "seq":42}`, 0, false, false},
		{`{"stream":"OR\"DERS", "seq":42}`, 0, false, false},
		{`{"stream":"ORDERS", "seq":}`, 0, false, false},
		{`{"stream":"ORDERS", "seq":99999999999999999999}`, 0, false, false},
		{`{"stream":"ORDERS", "seq":42`, 0, false, false},
		{`{"seq":42,"stream":"ORDERS"}`, 0, false, false},
		{``, 0, false, false},
		{`+OK`, 0, false, false},
	} {
		seq, dup, ok := scanPubAck([]byte(c.in))
		if seq != c.seq || dup != c.dup || ok != c.ok {
			t.Errorf("scanPubAck(%s) = %d, %v, %v; want %d, %v, %v", c.in, seq, dup, ok, c.seq, c.dup, c.ok)
		}
	}
}
