package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/outbox-cdc/outbox-cdc/config"
)

// Load reads the file, lays the environment over it and fills in every
// default.
func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "outbox-cdc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "outbox-cdc.yaml")
	os.WriteFile(path, []byte(`
postgres:
  url: postgres://outbox_cdc:secret@127.0.0.1:5432/app
sinks:
  - name: audit
    type: file
    path: /var/lib/outbox-cdc/events.jsonl
`), 0o600)

	cfg, err := config.Load(path, []string{"OUTBOX_CDC_POSTGRES_SLOT=orders"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("slot:", cfg.Postgres.Slot)
	fmt.Println("drain timeout:", cfg.Postgres.DrainTimeout)
	fmt.Println("tables:", cfg.TableNames())
	fmt.Println("url shown as:", cfg.Redacted().Postgres.URL)
	// Output:
	// slot: orders
	// drain timeout: 30s
	// tables: [public.outbox]
	// url shown as: postgres://outbox_cdc:xxxxx@127.0.0.1:5432/app
}

// Every problem of a file is reported at once, each as a *KeyError with the
// key and where its value came from.
func ExampleLoad_problems() {
	dir, _ := os.MkdirTemp("", "outbox-cdc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "outbox-cdc.yaml")
	os.WriteFile(path, []byte(`
postgres:
  url: postgres://127.0.0.1/app
  status_interval: soon
window:
  max_events: -1
sinks:
  - name: audit
    type: carrier-pigeon
`), 0o600)

	_, err := config.Load(path, nil, nil)
	var ke *config.KeyError
	fmt.Println(errors.As(err, &ke), ke.Key)
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		ke := e.(*config.KeyError)
		fmt.Println(ke.Key)
	}
	// Output:
	// true postgres.status_interval
	// postgres.status_interval
	// sinks[0].type
	// window.max_events
}
