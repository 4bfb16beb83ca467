package file

import "errors"

// Config configures a file sink.
type Config struct {
	// Path is the file events are appended to; "-" or "" means standard
	// output. The file is created with mode 0644 if missing.
	Path string
	// Sync makes every batch fsync before it is acknowledged, so an
	// acknowledged event survives a host crash, not only a process crash.
	// Default false: acknowledged once written to the operating system.
	Sync bool
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Sync && (c.Path == "" || c.Path == "-") {
		return errors.New("sync needs a file path, not standard output")
	}
	return nil
}
