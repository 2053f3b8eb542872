package scenario

import (
	"os"
	"testing"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// TestMain drops what the ttrpc library logs: every incident's deadlines
// leave replies nobody waits for, and a failure's output should be the
// failure.
func TestMain(m *testing.M) {
	shim.QuietLibraryLog()
	os.Exit(m.Run())
}
