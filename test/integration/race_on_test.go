//go:build race

package integration_test

// raceEnabled makes TestMain build castd with -race too, so that
// `go test -race ./test/...` also checks the daemon under real traffic.
const raceEnabled = true
