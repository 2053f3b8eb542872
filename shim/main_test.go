package shim

import (
	"os"
	"testing"
)

// TestMain drops what the ttrpc library logs ("received message on inactive
// stream" whenever a caller gave up before the shim answered, which the
// incident tests do on purpose), so a failure's output is the failure.
func TestMain(m *testing.M) {
	QuietLibraryLog()
	os.Exit(m.Run())
}
