// Package observe is the Prometheus and HTTP edge of outbox-cdc: it turns the
// hooks of the replication stream, the pipeline and the sinks into metrics,
// polls the slot's health from the server, decides liveness and readiness, and
// serves /metrics, /healthz, /readyz and /status.
package observe
