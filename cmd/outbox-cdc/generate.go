package main

// The command-line reference of the docs is generated from the command
// tree; TestCLIReferenceUpToDate fails when it is stale.
//go:generate go test -run ^TestCLIReferenceUpToDate$ . -args -update
