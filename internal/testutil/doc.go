// Package testutil holds the scaffolding that tests of several packages
// share, so that no package rebuilds it: an in-process REAPI server over a
// store (StartREAPI) and a bare gRPC server for fakes (ServeGRPC); waiting
// for asynchronous work (Poll, Eventually, WaitArmed for a clock.Fake);
// an in-memory Records; a context that ends with the test (Context); and
// blob, corruption and tmpfs helpers for the store.
//
// Nothing outside _test.go files imports it. The fake clock itself is
// internal/clock.Fake, beside the real one.
package testutil
