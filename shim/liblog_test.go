package shim

import (
	"bytes"
	"strings"
	"testing"

	clog "github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// What ttrpc logs through containerd/log's default logger lands in our log
// at debug level, tagged, and nowhere else.
func TestRouteLibraryLog(t *testing.T) {
	defer QuietLibraryLog()
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	RouteLibraryLog(logrus.NewEntry(l))
	clog.L.WithField("stream", 7).Error("ttrpc: received message on inactive stream")
	got := buf.String()
	for _, want := range []string{"level=debug", "component=ttrpc", "stream=7", "received message on inactive stream"} {
		if !strings.Contains(got, want) {
			t.Errorf("routed line %q lacks %q", got, want)
		}
	}
	buf.Reset()
	l.SetLevel(logrus.InfoLevel)
	clog.L.Error("ttrpc: received message on inactive stream")
	if buf.Len() != 0 {
		t.Errorf("at info level the library's line still printed: %q", buf.String())
	}
}
