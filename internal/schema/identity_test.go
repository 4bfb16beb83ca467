package schema_test

import (
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/schema"
)

// Judge names every way an outbox table can stop being streamed as it was,
// and lets a followed rename and an unchanged table through.
func TestJudge(t *testing.T) {
	t.Parallel()
	o := schema.Outbox{Name: "public.outbox", OID: 100, Membership: []string{"rel:7"}, Current: "public.outbox"}
	ok := schema.Inspection{Name: "public.outbox", ByName: 100, PubOID: 9, PubInsert: true, Membership: []string{"rel:7"}}
	with := func(f func(*schema.Inspection)) schema.Inspection {
		in := ok
		f(&in)
		return in
	}
	for _, tc := range []struct {
		name string
		in   schema.Inspection
		want []string // "" entries: no drift
	}{
		{"unchanged", ok, nil},
		{"renamed, name free", with(func(in *schema.Inspection) { in.Name, in.ByName = "public.outbox_old", 0 }), nil},
		{"also in the publication through its schema", with(func(in *schema.Inspection) { in.Membership = []string{"ns:3", "rel:7"} }), nil},
		{"left the publication", with(func(in *schema.Inspection) { in.Membership = nil }),
			[]string{"outbox table public.outbox is not in publication outbox_cdc", "outbox-cdc setup", "backfill"}},
		{"left and added back", with(func(in *schema.Inspection) { in.Membership = []string{"rel:8"} }),
			[]string{"left publication outbox_cdc and was added back", "backfill"}},
		{"dropped and recreated", with(func(in *schema.Inspection) { in.Name, in.ByName = "", 200 }),
			[]string{"is not the table outbox-cdc streamed", "OID 100", "OID 200", "publication outbox_cdc", "backfill"}},
		{"dropped", with(func(in *schema.Inspection) { in.Name, in.ByName = "", 0 }),
			[]string{"(OID 100) was dropped", "publication outbox_cdc"}},
		{"renamed away and replaced", with(func(in *schema.Inspection) { in.Name, in.ByName = "public.outbox_old", 300 }),
			[]string{"now called public.outbox_old", "OID 300", "publication outbox_cdc"}},
		{"publication dropped", with(func(in *schema.Inspection) { in.PubOID, in.Membership = 0, nil }),
			[]string{"publication outbox_cdc was dropped"}},
		{"inserts not published", with(func(in *schema.Inspection) { in.PubInsert = false }),
			[]string{"does not publish inserts"}},
		{"row filter", with(func(in *schema.Inspection) { in.Filtered = true }),
			[]string{"row filter or column list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := schema.Judge(o, tc.in, "outbox_cdc", "since 2026-11-30T10:00:00Z")
			if tc.want == nil {
				if d != nil {
					t.Fatalf("drift %q, want none", d)
				}
				return
			}
			if d == nil {
				t.Fatal("no drift")
			}
			if d.Table != "public.outbox" || d.Publication != "outbox_cdc" {
				t.Errorf("table %q publication %q", d.Table, d.Publication)
			}
			for _, w := range tc.want {
				if !strings.Contains(d.Error(), w) {
					t.Errorf("%q does not say %q", d.Error(), w)
				}
			}
		})
	}
}
