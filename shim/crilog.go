package shim

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// A container's output goes to its CRI log through the shim: the task's
// stdout and stderr are LogURI(path), and the shim writes each line as
// containerd's CRI logger (pkg/cri/io) does. containerd's daemon reads FIFOs
// instead; a FIFO pair per container is two descriptors held in each
// process for the container's life, more than a 10,000-container node has
// here, while this writer holds none between lines.

// logScheme marks a task output that is a CRI log file.
const logScheme = "crilog://"

// MaxLogLineSize is containerd's max_container_log_line_size default: a
// longer line is split into partial (P) entries.
const MaxLogLineSize = 16 * 1024

// LogURI is the task output that writes to the CRI log at path.
func LogURI(path string) string { return logScheme + path }

// logStream is one stream of a process's output into its CRI log: lines
// are buffered until their newline, then written as one entry
// "<RFC3339Nano time> <stream> <F|P> <line>\n", the time the project
// clock's when the line is complete. A line longer than MaxLogLineSize is
// cut into partial (P) entries; a last line without a newline is partial.
// The file is opened for each entry (O_APPEND), so a rotation (kubelet
// renames the file, then asks ReopenContainerLog) moves the next entry to
// the new file.
type logStream struct {
	path, stream string
	clock        clock.Clock
	log          *logrus.Entry

	mu     sync.Mutex
	buf    []byte
	failed bool // the open failure was logged
	closed bool
}

func newLogStream(path, stream string, clk clock.Clock, log *logrus.Entry) *logStream {
	return &logStream{path: filepath.Clean(path), stream: stream, clock: clk, log: log}
}

func (l *logStream) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	l.buf = append(l.buf, p...)
	var entries []byte
	for {
		i := bytes.IndexByte(l.buf, '\n')
		switch {
		case i >= 0 && i <= MaxLogLineSize:
			entries = l.appendEntry(entries, "F", l.buf[:i])
			l.buf = l.buf[i+1:]
			continue
		case len(l.buf) > MaxLogLineSize:
			entries = l.appendEntry(entries, "P", l.buf[:MaxLogLineSize])
			l.buf = l.buf[MaxLogLineSize:]
			continue
		}
		break
	}
	l.buf = append([]byte(nil), l.buf...) // drop the written prefix's array
	l.writeLocked(entries)
	return len(p), nil
}

// Close writes what is left as a partial line.
func (l *logStream) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if len(l.buf) > 0 {
		l.writeLocked(l.appendEntry(nil, "P", l.buf))
		l.buf = nil
	}
	return nil
}

func (l *logStream) appendEntry(dst []byte, tag string, line []byte) []byte {
	dst = l.clock.Now().UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, ' ')
	dst = append(dst, l.stream...)
	dst = append(dst, ' ')
	dst = append(dst, tag...)
	dst = append(dst, ' ')
	dst = append(dst, line...)
	return append(dst, '\n')
}

func (l *logStream) writeLocked(entries []byte) {
	if len(entries) == 0 {
		return
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err == nil {
		_, err = f.Write(entries)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil && !l.failed {
		l.failed = true
		l.log.WithError(err).WithField("path", l.path).Warn("cannot write the container log; dropping output")
	}
}
