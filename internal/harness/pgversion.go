package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Environment variables of the PostgreSQL version matrix. See the package
// documentation.
const (
	// EnvPGVersion selects the PostgreSQL major (14, 15, 16, 17, 18) every
	// StartPostgres without an explicit Version or BinDir starts. Unset or
	// empty: $OUTBOX_CDC_TEST_PG_BIN, else the newest Debian server.
	EnvPGVersion = "OUTBOX_CDC_TEST_PG_VERSION"
	// EnvPGVersions is the directory holding one <major>/bin per PostgreSQL
	// major fetched by scripts/install-test-deps.sh.
	EnvPGVersions = "OUTBOX_CDC_TEST_PG_VERSIONS"
)

// SupportedPGVersions are the PostgreSQL majors outbox-cdc supports and the
// matrix runs.
var SupportedPGVersions = []int{14, 15, 16, 17, 18}

// PGVersion returns the major selected by $OUTBOX_CDC_TEST_PG_VERSION, 0 when it
// is unset or empty, and an error when it is not a supported major.
func PGVersion() (int, error) {
	v := strings.TrimSpace(os.Getenv(EnvPGVersion))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || !supportedPG(n) {
		return 0, fmt.Errorf("%s=%q: want one of %v", EnvPGVersion, v, SupportedPGVersions)
	}
	return n, nil
}

func supportedPG(n int) bool {
	for _, v := range SupportedPGVersions {
		if v == n {
			return true
		}
	}
	return false
}

// PGBinDirFor returns the bin dir of PostgreSQL major: the first of
// $OUTBOX_CDC_TEST_PG_VERSIONS/<major>/bin, /var/cache/outbox-cdc/postgres/<major>/bin,
// $OUTBOX_CDC_TEST_CACHE/postgres/<major>/bin and /usr/lib/postgresql/<major>/bin
// that holds initdb and postgres. The error wraps ErrNotInstalled.
func PGBinDirFor(major int) (string, error) {
	var cands []string
	if d := os.Getenv(EnvPGVersions); d != "" {
		cands = append(cands, filepath.Join(d, itoa(major), "bin"))
	}
	cands = append(cands,
		filepath.Join("/var/cache/outbox-cdc/postgres", itoa(major), "bin"),
		filepath.Join(CacheDir(), "postgres", itoa(major), "bin"),
		filepath.Join("/usr/lib/postgresql", itoa(major), "bin"))
	for _, d := range cands {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("postgres: PostgreSQL %d not found (looked in %s; scripts/install-test-deps.sh fetches it): %w",
		major, strings.Join(cands, ", "), ErrNotInstalled)
}

var pgVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// binMajor returns the major version of the postgres binary in binDir, from
// `postgres --version`.
func binMajor(binDir string) (int, error) {
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("postgres: %s/postgres --version: %v", binDir, err)
	}
	m := pgVersionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("postgres: %s/postgres --version said %q", binDir, strings.TrimSpace(string(out)))
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n, nil
}

// Tool returns the path of a PostgreSQL client program (psql,
// pg_recvlogical, ...) for this server: the one in BinDir, else the newest
// Debian one (/usr/lib/postgresql/*/bin), since the server packages of the
// version matrix carry only initdb, pg_ctl and postgres. Client programs
// speak to servers of other majors. When none exists it returns the BinDir
// path, which fails to run with a clear error.
func (pg *Postgres) Tool(name string) string {
	p := filepath.Join(pg.binDir, name)
	if isExecutable(p) {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	best, bestMajor := "", -1
	for _, m := range matches {
		if v := pgMajor(filepath.Dir(m)); isExecutable(m) && v > bestMajor {
			best, bestMajor = m, v
		}
	}
	if best != "" {
		return best
	}
	return p
}
