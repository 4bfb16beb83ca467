// Package file implements the stdout and file sinks: one CloudEvent per line
// in the CloudEvents JSON format (structured mode), acknowledged once written.
package file
