package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
)

// healthcheckCommand asks a running outbox-cdc's /healthz and exits 0 when
// it answers 200, 1 otherwise. It is the container image's HEALTHCHECK: the
// image has no curl. The address is --addr, else http.addr of the config
// (--config or $OUTBOX_CDC_CONFIG, with environment overrides), else
// $OUTBOX_CDC_HTTP_ADDR, else the default 127.0.0.1:9187; a wildcard host
// (0.0.0.0, ::) is asked on loopback.
func healthcheckCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when a running outbox-cdc's /healthz answers 200 (the image's HEALTHCHECK)",
		Args:  noArgs,
	}
	addr := cmd.Flags().String("addr", "", "host:port of outbox-cdc's HTTP server (default: http.addr of the config)")
	cfgPath := configFlag(cmd)
	timeout := cmd.Flags().Duration("timeout", 3*time.Second, "how long to wait for the answer")
	cmd.RunE = func(*cobra.Command, []string) error {
		if code := healthcheck(*addr, *cfgPath, *timeout, stdout, stderr); code != 0 {
			return exitError(code)
		}
		return nil
	}
	return cmd
}

func healthcheck(addr, cfgPath string, timeout time.Duration, stdout, stderr io.Writer) int {
	a := addr
	if a == "" && cfgPath != "" {
		if cfg, err := config.Load(cfgPath, os.Environ(), nil); err == nil {
			a = cfg.HTTP.Addr
		}
	}
	if a == "" {
		a = os.Getenv("OUTBOX_CDC_HTTP_ADDR")
	}
	if a == "" {
		a = observe.DefaultAddr
	}
	if a == "-" {
		fmt.Fprintln(stderr, "outbox-cdc healthcheck: http.addr is \"-\" (the HTTP server is off); set http.addr to check /healthz")
		return 1
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		fmt.Fprintf(stderr, "outbox-cdc healthcheck: address %q: %v (want host:port)\n", a, err)
		return 2
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "outbox-cdc healthcheck:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "outbox-cdc healthcheck: %s: %v\n", url, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "outbox-cdc healthcheck: %s: %s %s\n", url, resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "healthy: %s\n", url)
	return 0
}
