// Package file implements the stdout and file sinks: one CloudEvent per line
// in the CloudEvents JSON format (structured mode), acknowledged once written.
// A file the sink creates is private (mode 0600) unless Config.Mode says
// otherwise.
package file
