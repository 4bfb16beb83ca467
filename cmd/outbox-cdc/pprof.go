package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// envPprof names a loopback address (e.g. 127.0.0.1:6060) on which the
// process serves net/http/pprof, for profiling benchmark runs (make bench
// -pprof). It is a harness variable (OUTBOX_CDC_TEST_*), not a config key:
// profiles are for developers, and the listener is refused on any address
// that is not loopback.
const envPprof = "OUTBOX_CDC_TEST_PPROF_ADDR"

func init() {
	addr := os.Getenv(envPprof)
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "outbox-cdc: %s=%q: not a loopback host:port; pprof not served\n", envPprof, addr)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "outbox-cdc: %s: %v; pprof not served\n", envPprof, err)
		return
	}
	go func() { _ = http.Serve(ln, mux) }()
}
