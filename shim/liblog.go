package shim

import (
	"io"

	"github.com/sirupsen/logrus"
)

// RouteLibraryLog sends what the ttrpc library logs to logrus's standard
// logger (through containerd/log's default entry) to log at debug level,
// with component=ttrpc. ttrpc logs "received message on inactive stream" at
// error level whenever a reply arrives for a call whose caller gave up, as
// every deadline of an incident does; containerd 1.6's ttrpc did not log
// it, and users grep error lines, so here it is a debug line of our own
// log. The standard logger is the library's, process-wide: call this once,
// from main or TestMain.
func RouteLibraryLog(to *logrus.Entry) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.SetLevel(logrus.InfoLevel)
	std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(forward{to: to.WithField("component", "ttrpc")})
}

type forward struct{ to *logrus.Entry }

func (forward) Levels() []logrus.Level { return logrus.AllLevels }

func (f forward) Fire(e *logrus.Entry) error {
	f.to.WithFields(e.Data).WithTime(e.Time).Debug(e.Message)
	return nil
}

// QuietLibraryLog drops what the ttrpc library logs (tests).
func QuietLibraryLog() {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.PanicLevel)
	RouteLibraryLog(logrus.NewEntry(l))
}
