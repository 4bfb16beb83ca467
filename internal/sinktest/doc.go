// Package sinktest is the conformance suite every sink passes (Run, in the
// manner of testing/fstest.TestFS) and the test helpers the sink, event and
// end-to-end tests share: one maker of test events (Events), one recorder of
// acknowledgements and signals (Recorder, Options), one concurrency-safe log
// capture (Log), and one embedded copy of the CloudEvents 1.0 JSON schema
// (Schema).
//
// It is for tests only; nothing outside _test.go files imports it.
package sinktest
