// Package e2e drives the built fakecontainerd binary the way its users do:
// crictl's client library (k8s.io/cri-client) and crictl's own config file
// shapes against a server started as a child process, killed and restarted
// on the same state, with process-mode shims that outlive it, and with bad
// flags and configs on its command line. The tests are in the _test files;
// `go test ./e2e/` builds the binary itself.
package e2e
