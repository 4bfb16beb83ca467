//go:build tools

package harness

// The nats-server main package is never compiled into the harness: this file
// only keeps its module in go.mod through `go mod tidy`, because
// scripts/install-test-deps.sh and StartNATS build the server binary with
// `go build github.com/nats-io/nats-server/v2` at the version go.mod pins.
import _ "github.com/nats-io/nats-server/v2"
