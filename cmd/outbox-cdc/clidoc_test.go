package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/outbox-cdc/outbox-cdc/internal/golden"
)

// cliPage is the command-line reference, relative to this package.
const cliPage = "../../docs/reference/cli.md"

var updateCLIPage = flag.Bool("update", false, "rewrite docs/reference/cli.md from the command tree")

// TestCLIReferenceUpToDate generates the command-line reference from the
// cobra command tree and compares it with the page checked in: a command
// or flag added, renamed or re-described without `go generate
// ./cmd/outbox-cdc/` (or make docs-cli) fails here. With -update it writes
// the page instead.
func TestCLIReferenceUpToDate(t *testing.T) {
	got := cliReference(t)
	if *updateCLIPage {
		if err := os.WriteFile(cliPage, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	golden.Check(t, cliPage, got, "go generate ./cmd/outbox-cdc/ (or make docs-cli)")
}

// TestCLIReferenceCoversEveryCommand checks the generator against the tree:
// every command that is not hidden has its section, and a few flags appear
// with their defaults.
func TestCLIReferenceCoversEveryCommand(t *testing.T) {
	page := string(cliReference(t))
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		if !strings.Contains(page, "\n## "+c.CommandPath()+"\n") {
			t.Errorf("no section for %q", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(docRoot(t))
	for _, want := range []string{
		"| `--aggregate-id string` |  | the aggregate id |",
		"| `--limit int` | `50` |",
		"| `--table string` | `public.outbox_inbox` |",
		"`outbox-cdc sinks pause NAME [flags]`",
		"| [`outbox-cdc dlq replay`](#outbox-cdc-dlq-replay) |",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the reference has no line with %q", want)
		}
	}
}

// docRoot is the command tree as a user sees it: with the help and
// completion commands cobra adds when it runs, and no default taken from
// the environment of the machine that generates the page.
func docRoot(t *testing.T) *cobra.Command {
	t.Helper()
	for _, v := range []string{"OUTBOX_CDC_CONFIG", "OUTBOX_CDC_INBOX_URL", "OUTBOX_CDC_HTTP_ADDR", TokenEnv} {
		t.Setenv(v, "")
	}
	root := newRoot(io.Discard, io.Discard)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}

// cliReference renders docs/reference/cli.md: a table of the commands,
// then one section per command (its description, usage, flags and the
// flags it inherits), in the order of the tree.
func cliReference(t *testing.T) []byte {
	root := docRoot(t)
	var b bytes.Buffer
	b.WriteString(`# Command-line reference

<!-- Generated from the command tree of cmd/outbox-cdc (go generate ./cmd/outbox-cdc/, or make docs-cli); do not edit. -->

Every command and flag of ` + "`outbox-cdc`" + `, as ` + "`--help`" + ` prints them.

- Every command takes ` + "`-h`, `--help`" + `; flags may come before or after
  positional arguments.
- Exit status: 0 success, 1 failure, 2 wrong usage.
- The commands that read the configuration take ` + "`--config FILE`" + `
  (default ` + "`$OUTBOX_CDC_CONFIG`" + `); every key of the file can be set by an
  environment variable ([configuration reference](configuration.md)).
- The commands under *A running instance* talk to the admin API of a
  running ` + "`outbox-cdc run`" + ` ([admin console and API](../admin-console.md)); ` + "`dlq`" + `
  works on the dead-letter table in PostgreSQL and needs no running
  instance ([failures and dead letters](../failures.md)).

| command | what it does |
|---|---|
`)
	var all []*cobra.Command
	var collect func(c *cobra.Command)
	collect = func(c *cobra.Command) {
		all = append(all, c)
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() || s.Name() == "help" {
				collect(s)
			}
		}
	}
	for _, g := range root.Groups() {
		for _, c := range root.Commands() {
			if c.GroupID == g.ID && (c.IsAvailableCommand() || c.Name() == "help") {
				collect(c)
			}
		}
	}
	for _, c := range all {
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s |\n", c.CommandPath(), anchor(c.CommandPath()), cell(c.Short))
	}
	for _, c := range append([]*cobra.Command{root}, all...) {
		section(&b, c)
	}
	return b.Bytes()
}

func section(b *bytes.Buffer, c *cobra.Command) {
	fmt.Fprintf(b, "\n## %s\n\n", c.CommandPath())
	if c.Long != "" {
		b.WriteString(text(c.Long) + "\n\n")
	} else if c.Short != "" {
		b.WriteString(text(sentence(c.Short)) + "\n\n")
	}
	b.WriteString("Usage: `" + c.UseLine() + "`")
	if c.HasAvailableSubCommands() {
		b.WriteString(" or `" + c.CommandPath() + " COMMAND`; commands:")
		var subs []string
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				subs = append(subs, fmt.Sprintf(" [`%s`](#%s)", s.Name(), anchor(s.CommandPath())))
			}
		}
		b.WriteString(strings.Join(subs, ","))
		b.WriteString(".")
	}
	b.WriteString("\n")
	if len(c.Aliases) > 0 {
		fmt.Fprintf(b, "\nAliases: `%s`.\n", strings.Join(c.Aliases, "`, `"))
	}
	if c.Example != "" {
		fmt.Fprintf(b, "\n```\n%s\n```\n", strings.Trim(c.Example, "\n"))
	}
	flags(b, "Flags", c.NonInheritedFlags())
	flags(b, "Inherited flags", c.InheritedFlags())
}

// flags writes a table of the flags of fs but help.
func flags(b *bytes.Buffer, title string, fs *pflag.FlagSet) {
	var rows []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		name, usage := pflag.UnquoteUsage(f)
		spec := "--" + f.Name
		if f.Shorthand != "" {
			spec = "-" + f.Shorthand + ", " + spec
		}
		if name != "" {
			spec += " " + name
		}
		def := ""
		switch f.DefValue {
		case "", "false", "0", "[]", "0s":
		default:
			def = "`" + f.DefValue + "`"
		}
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |", spec, def, cell(usage)))
	})
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s:\n\n| flag | default | description |\n|---|---|---|\n%s\n", title, strings.Join(rows, "\n"))
}

// anchor is the id MkDocs gives the heading s.
func anchor(s string) string { return strings.ReplaceAll(s, " ", "-") }

// sentence capitalises s and ends it with a full stop.
func sentence(s string) string {
	if s == "" || strings.HasSuffix(s, ".") {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// text makes plain help text Markdown: a line indented by a tab is a
// command, kept as it is in a code block; elsewhere, outside code spans,
// characters Markdown or HTML would read are escaped.
func text(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "*", `\*`, "[", `\[`, "]", `\]`, "|", `\|`)
	for i, l := range lines {
		if strings.HasPrefix(l, "\t") {
			lines[i] = "    " + strings.TrimPrefix(l, "\t")
			continue
		}
		parts := strings.Split(l, "`")
		for j := 0; j < len(parts); j += 2 {
			parts[j] = r.Replace(parts[j])
		}
		lines[i] = strings.Join(parts, "`")
		if strings.HasPrefix(lines[i], "#") {
			lines[i] = `\` + lines[i]
		}
	}
	return strings.Join(lines, "\n")
}

// cell is text on one line, for a table cell.
func cell(s string) string {
	return strings.Join(strings.Fields(text(s)), " ")
}
