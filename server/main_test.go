package server

import (
	"os"
	"testing"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// TestMain drops what the ttrpc library logs ("received message on inactive
// stream" whenever a caller gave up before the shim answered, which the
// incident tests do on purpose), so a failure's output is the failure.
func TestMain(m *testing.M) {
	shim.QuietLibraryLog()
	os.Exit(m.Run())
}
