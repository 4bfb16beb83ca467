package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// commit and date are stamped at build time, like version:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=$(git rev-parse HEAD) -X main.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// (make release and the Dockerfile do it). Without them the VCS stamp Go
// records in the binary is used when there is one.
var (
	commit = ""
	date   = ""
)

// buildInfo returns the commit and build date, from -ldflags or else from
// the VCS information Go embeds ("unknown" when neither has it).
func buildInfo() (rev, when string) {
	rev, when = commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value
			case s.Key == "vcs.time" && when == "":
				when = s.Value
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if when == "" {
		when = "unknown"
	}
	return rev, when
}

// printVersion writes `outbox-cdc <version>` and then the commit, the build
// date and the Go version, one per line.
func printVersion(w io.Writer) {
	rev, when := buildInfo()
	fmt.Fprintln(w, "outbox-cdc", versionString())
	fmt.Fprintln(w, "commit:", rev)
	fmt.Fprintln(w, "built:", when)
	fmt.Fprintln(w, "go:", runtime.Version())
}
