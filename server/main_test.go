package server

import (
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestMain quiets logrus's standard logger, which ttrpc logs to ("received
// message on inactive stream" whenever a caller gave up before the shim
// answered, which the incident tests do on purpose).
func TestMain(m *testing.M) {
	logrus.SetLevel(logrus.FatalLevel)
	os.Exit(m.Run())
}
