package file

import (
	"errors"
	"os"
)

// DefaultMode is the permission of an output file the sink creates: only
// outbox-cdc's own user reads the events.
const DefaultMode os.FileMode = 0o600

// Config configures a file sink.
type Config struct {
	// Path is the file events are appended to; "-" or "" means standard
	// output. The file is created with Mode if missing.
	Path string
	// Sync makes every batch fsync before it is acknowledged, so an
	// acknowledged event survives a host crash, not only a process crash.
	// Default false: acknowledged once written to the operating system.
	Sync bool
	// Mode is the permission of the file when the sink creates it (the
	// process umask still applies). Default DefaultMode (0600). A file that
	// exists keeps its mode; the sink warns when it allows more than Mode.
	Mode os.FileMode
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Sync && (c.Path == "" || c.Path == "-") {
		return errors.New("sync needs a file path, not standard output")
	}
	if c.Mode&^os.ModePerm != 0 {
		return errors.New("mode: only permission bits (0 to 0777) are allowed")
	}
	return nil
}
