package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/admin"
)

// TokenEnv names the environment variable the API commands read their
// token from when --token is not given.
const TokenEnv = "OUTBOX_CDC_TOKEN"

// apiFlags are the flags of the commands that talk to a running instance.
type apiFlags struct {
	config, addr, token *string
	json                *bool
}

func tokenFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("token", "", "admin API token (default $"+TokenEnv+", else a token of admin.tokens in the config)")
}

func addAPIFlags(cmd *cobra.Command) apiFlags {
	return apiFlags{
		config: configFlag(cmd),
		addr:   cmd.Flags().String("addr", "", "host:port of the running instance (default: http.addr of the config)"),
		token:  tokenFlag(cmd),
		json:   cmd.Flags().Bool("json", false, "print the API's JSON"),
	}
}

// apiClient calls a running instance's admin API.
type apiClient struct {
	base  string // http://host:port
	token string
	hc    *http.Client
}

// client builds the API client: the address from --addr or http.addr, the
// token from --token, $OUTBOX_CDC_TOKEN, or the config's tokens (an
// operator's first when operator is true).
func (f apiFlags) client(operator bool) (*apiClient, error) {
	var cfg *config.Config
	if *f.config != "" || *f.addr == "" {
		c, err := config.Load(*f.config, os.Environ(), nil)
		if err != nil && *f.addr == "" {
			return nil, err
		}
		cfg = c
	}
	addr := *f.addr
	if addr == "" {
		addr = cfg.HTTP.Addr
	}
	if addr == "-" {
		return nil, errors.New("http.addr is \"-\": the instance serves no HTTP, so it has no admin API; set http.addr and admin.enabled")
	}
	return newAPIClient(addr, resolveToken(*f.token, cfg, operator)), nil
}

// resolveToken picks the token: flag, environment, then the config.
func resolveToken(flag string, cfg *config.Config, operator bool) string {
	if flag != "" {
		return flag
	}
	if t := os.Getenv(TokenEnv); t != "" {
		return t
	}
	if cfg == nil {
		return ""
	}
	var first string
	for _, t := range cfg.Admin.Tokens {
		s, err := t.Secret()
		if err != nil || s == "" {
			continue
		}
		if !operator || t.Role == config.RoleOperator {
			return s
		}
		if first == "" {
			first = s
		}
	}
	return first
}

func newAPIClient(addr, token string) *apiClient {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, port)
	}
	return &apiClient{base: "http://" + addr, token: token, hc: &http.Client{}}
}

// call sends a request and decodes the JSON answer into out.
func (c *apiClient) call(ctx context.Context, method, path string, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: no answer within %s", method, c.base+path, timeout)
		}
		return fmt.Errorf("no running outbox-cdc answers at %s (is `outbox-cdc run` running, with this http.addr?): %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(body, &e)
		switch {
		case resp.StatusCode == http.StatusNotFound && e.Error == "" || strings.HasPrefix(e.Error, "no such API route"):
			return fmt.Errorf("the instance at %s serves no admin API: set admin.enabled in its configuration", c.base)
		case resp.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("the admin API at %s refused the request (%s): give --token, $%s, or a token in admin.tokens of --config", c.base, e.Error, TokenEnv)
		case e.Error != "":
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = body
		return nil
	}
	return json.Unmarshal(body, out)
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	b.WriteByte('\n')
	_, err := b.WriteTo(w)
	return err
}

const (
	readTimeout  = 30 * time.Second
	writeTimeout = 3 * time.Minute // a republish or replay waits for the broker
)

func sinksCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sinks",
		Short: "List a running instance's sinks; pause or resume one",
		Long: `sinks asks a running outbox-cdc (its admin API: admin.enabled) for its sinks'
state. pause stops handing events to a sink: the slot holds and the server
retains WAL until resume, exactly as with a broker that is down.`,
		Args: noArgs,
	}
	f := addAPIFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client(false)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.call(cmd.Context(), "GET", "/api/v1/sinks", readTimeout, &raw); err != nil {
			return err
		}
		if *f.json {
			return printJSON(stdout, raw)
		}
		var v struct{ Sinks []admin.Sink }
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SINK\tTYPE\tSTATE\tPENDING\tACKNOWLEDGED\tACKED UP TO\tLAST ERROR")
		for _, s := range v.Sinks {
			msg := s.LastError
			if len(msg) > 80 {
				msg = msg[:77] + "..."
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", s.Name, s.Type, s.State, s.Pending, s.Acknowledged, s.AcknowledgedLSN, msg)
		}
		return w.Flush()
	}
	for _, verb := range []string{"pause", "resume"} {
		sub := &cobra.Command{
			Use:   verb + " NAME",
			Short: map[string]string{"pause": "Pause a sink: its events stay unacknowledged, the slot holds", "resume": "Resume a paused sink"}[verb],
			Args:  exactArgs(1, "the sink's name"),
		}
		sf := addAPIFlags(sub)
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			c, err := sf.client(true)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.call(cmd.Context(), "POST", "/api/v1/sinks/"+url.PathEscape(args[0])+"/"+verb, readTimeout, &raw); err != nil {
				return err
			}
			if *sf.json {
				return printJSON(stdout, raw)
			}
			fmt.Fprintf(stdout, "sink %s %sd\n", args[0], verb)
			if verb == "pause" {
				fmt.Fprintln(stdout, "the slot holds and the server retains WAL until `outbox-cdc sinks resume "+args[0]+"` (or a restart)")
			}
			return nil
		}
		sub.ValidArgsFunction = cobra.NoFileCompletions
		cmd.AddCommand(sub)
	}
	return cmd
}

func eventsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Find events in a running instance's outbox, show one as each sink sends it, republish it",
		RunE:  parentOnly(os.Stderr),
	}
	find := &cobra.Command{Use: "find", Short: "Search the outbox, newest first", Args: noArgs}
	ff := addAPIFlags(find)
	filters := map[string]*string{}
	for _, k := range []struct{ flag, param, help string }{
		{"id", "id", "the event id"}, {"type", "type", "the CloudEvents type"}, {"aggregate-type", "aggregate_type", "the aggregate type"},
		{"aggregate-id", "aggregate_id", "the aggregate id"}, {"from", "from", "rows at or after this time (RFC 3339)"},
		{"to", "to", "rows before this time"}, {"table", "table", "a configured outbox table (default: the first)"}, {"cursor", "cursor", "the next page's cursor"},
	} {
		filters[k.param] = find.Flags().String(k.flag, "", k.help)
	}
	limit := find.Flags().Int("limit", admin.DefaultPageSize, "events per page (at most 500)")
	find.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := ff.client(false)
		if err != nil {
			return err
		}
		q := url.Values{}
		for k, v := range filters {
			if *v != "" {
				q.Set(k, *v)
			}
		}
		q.Set("limit", fmt.Sprint(*limit))
		var raw json.RawMessage
		if err := c.call(cmd.Context(), "GET", "/api/v1/events?"+q.Encode(), readTimeout, &raw); err != nil {
			return err
		}
		if *ff.json {
			return printJSON(stdout, raw)
		}
		var page admin.EventPage
		if err := json.Unmarshal(raw, &page); err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tTYPE\tAGGREGATE TYPE\tAGGREGATE ID\tTIME")
		for _, e := range page.Events {
			t := "-"
			if e.Time != nil {
				t = e.Time.UTC().Format(time.RFC3339Nano)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Type, e.AggregateType, e.AggregateID, t)
		}
		w.Flush()
		fmt.Fprintf(stdout, "%d events (%.1f ms in the database)\n", len(page.Events), page.ServerMillis)
		if page.Next != "" {
			fmt.Fprintf(stdout, "next page: --cursor %s\n", page.Next)
		}
		return nil
	}

	show := &cobra.Command{Use: "show ID", Short: "Show an event: its row, its CloudEvent and what each sink sends (JSON)", Args: exactArgs(1, "one event id")}
	sf := addAPIFlags(show)
	showTable := show.Flags().String("table", "", "a configured outbox table (default: every table)")
	show.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := sf.client(false)
		if err != nil {
			return err
		}
		path := "/api/v1/events/" + url.PathEscape(args[0])
		if *showTable != "" {
			path += "?table=" + url.QueryEscape(*showTable)
		}
		var raw json.RawMessage
		if err := c.call(cmd.Context(), "GET", path, readTimeout, &raw); err != nil {
			return err
		}
		return printJSON(stdout, raw)
	}

	republish := &cobra.Command{Use: "republish ID --sink NAME", Short: "Send an event again, with its id, through a sink's normal path", Args: exactArgs(1, "one event id")}
	rf := addAPIFlags(republish)
	sinkName := republish.Flags().String("sink", "", "the sink to send it to (required)")
	republish.MarkFlagRequired("sink")
	republish.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := rf.client(true)
		if err != nil {
			return err
		}
		var res admin.RepublishResult
		path := "/api/v1/events/" + url.PathEscape(args[0]) + "/republish?sink=" + url.QueryEscape(*sinkName)
		if err := c.call(cmd.Context(), "POST", path, writeTimeout, &res); err != nil {
			return err
		}
		if *rf.json {
			b, _ := json.MarshalIndent(res, "", "  ")
			fmt.Fprintln(stdout, string(b))
			return nil
		}
		dup := ""
		if res.Duplicate {
			dup = " (the broker reported it already held the event)"
		}
		fmt.Fprintf(stdout, "event %s republished to sink %s and acknowledged%s\n", res.ID, res.Sink, dup)
		return nil
	}
	cmd.AddCommand(find, show, republish)
	return cmd
}

func adminCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Make credentials for the admin console and API",
		RunE:  parentOnly(os.Stderr),
	}
	token := &cobra.Command{
		Use:   "token",
		Short: "Print a random token for admin.tokens",
		Args:  noArgs,
		Run: func(*cobra.Command, []string) {
			b := make([]byte, 32)
			rand.Read(b)
			fmt.Fprintln(stdout, base64.RawURLEncoding.EncodeToString(b))
		},
	}
	hash := &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password on standard input and print its bcrypt hash for admin.users",
		Args:  noArgs,
	}
	cost := hash.Flags().Int("cost", bcrypt.DefaultCost, "bcrypt cost")
	hash.RunE = func(cmd *cobra.Command, _ []string) error {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return usagef("give the password on standard input")
		}
		h, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(h))
		return nil
	}
	cmd.AddCommand(token, hash)
	return cmd
}
