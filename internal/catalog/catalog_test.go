package catalog_test

import (
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
)

// The guard writes its message with schema's prefix; the decoder must know
// it by the same one.
func TestDDLMessagePrefixesAgree(t *testing.T) {
	if decoder.DDLMessagePrefix != schema.DDLMessagePrefix {
		t.Fatalf("decoder.DDLMessagePrefix %q, schema.DDLMessagePrefix %q", decoder.DDLMessagePrefix, schema.DDLMessagePrefix)
	}
}
