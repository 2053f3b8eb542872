//go:build race

package e2e

// raceEnabled builds the server with -race too when the tests run with it,
// so the e2e suite also looks for races in the server and its shims.
const raceEnabled = true
