package config

// The configuration reference of the docs is generated from this package's
// types and doc comments; internal/tools/configref's test fails when it is
// stale.
//go:generate go run ../internal/tools/configref -root .. -o docs/reference/configuration.md
