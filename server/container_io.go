package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// The containers' output, as containerd's CRI plugin handles it: a FIFO
// per stream (cio.NewFIFOSetInDir under the container's volatile root),
// which the shim's process writes and the daemon reads, line by line, into
// the container's log file in the CRI format (pkg/cri/io's CRI logger).

const (
	// maxContainerLogLineSize is containerd's max_container_log_line_size
	// default: a longer line is split into partial (P) entries.
	maxContainerLogLineSize = 16 * 1024
	// maxExecSyncOutput caps each collected ExecSync stream (containerd
	// 1.7's maxStreamSize), so an endless printer cannot exhaust memory.
	maxExecSyncOutput = 16 << 20

	streamStdout = "stdout"
	streamStderr = "stderr"
)

// fifoSet is one process's output FIFOs and the daemon's read ends.
type fifoSet struct {
	dir            string
	stdout, stderr string // "" when the stream is not wanted (tty: no stderr)
	readers        map[string]*os.File
}

// newFIFOSet makes the FIFOs in dir and opens their read ends without
// blocking, before the shim opens the write ends (as containerd/fifo does).
// The readers must only be read once the shim has opened its ends: a FIFO
// with no writer reads EOF.
func newFIFOSet(dir, id string, tty bool) (_ *fifoSet, retErr error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create io directory of %s: %w", id, err)
	}
	fs := &fifoSet{dir: dir, readers: map[string]*os.File{}}
	defer func() {
		if retErr != nil {
			fs.close()
		}
	}()
	streams := []string{streamStdout, streamStderr}
	if tty {
		streams = streams[:1]
	}
	for _, stream := range streams {
		path := filepath.Join(dir, id+"-"+stream)
		if err := syscall.Mkfifo(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create %s fifo of %s: %w", stream, id, err)
		}
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s fifo of %s: %w", stream, id, err)
		}
		fs.readers[stream] = f
		if stream == streamStdout {
			fs.stdout = path
		} else {
			fs.stderr = path
		}
	}
	return fs, nil
}

// close closes the read ends and removes the FIFOs.
func (fs *fifoSet) close() {
	for _, r := range fs.readers {
		r.Close()
	}
	os.RemoveAll(fs.dir)
}

// copyOut copies each stream until its writer is gone (EOF) with
// handle(stream, reader), then closes the set and calls done.
func (fs *fifoSet) copyOut(handle func(stream string, r io.Reader), done func()) {
	var wg sync.WaitGroup
	for stream, r := range fs.readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(stream, r)
		}()
	}
	go func() {
		wg.Wait()
		fs.close()
		if done != nil {
			done()
		}
	}()
}

// containerLog is a container's CRI log file; ReopenContainerLog swaps the
// file under it.
type containerLog struct {
	path string

	mu sync.Mutex
	f  *os.File
}

func openContainerLog(path string) (*containerLog, error) {
	l := &containerLog{path: path}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// reopen opens the log path again (kubelet moved the old file away when it
// rotated it) and writes there from now on.
func (l *containerLog) reopen() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return fmt.Errorf("create log directory for %q: %w", l.path, err)
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("failed to create and open log file %q: %w", l.path, err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Write writes one whole entry.
func (l *containerLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	return l.f.Write(p)
}

func (l *containerLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// redirectLogs is containerd's CRI logger: each line read from a stream is
// one entry "<RFC3339Nano time> <stream> <F|P> <line>\n", the time being
// the project clock's when the line was read; a line longer than maxLen is
// cut into partial (P) entries, and a last line without a newline is
// partial too.
func redirectLogs(clk clock.Clock, log *logrus.Entry, w io.Writer, stream string, r io.Reader, maxLen int) {
	br := bufio.NewReaderSize(r, 4096)
	var buf [][]byte
	length := 0
	write := func(tag string, parts [][]byte) {
		line := bytes.Join(parts, nil)
		entry := make([]byte, 0, len(line)+48)
		entry = clk.Now().UTC().AppendFormat(entry, time.RFC3339Nano)
		entry = append(entry, ' ')
		entry = append(entry, stream...)
		entry = append(entry, ' ')
		entry = append(entry, tag...)
		entry = append(entry, ' ')
		entry = append(entry, line...)
		entry = append(entry, '\n')
		if _, err := w.Write(entry); err != nil {
			log.WithError(err).WithField("stream", stream).Debug("failed to write container log entry")
		}
	}
	for {
		stop := false
		part, isPrefix, err := br.ReadLine()
		if len(part) > 0 {
			buf = append(buf, bytes.Clone(part))
			length += len(part)
		}
		if err != nil {
			if length == 0 {
				return
			}
			stop = true
		}
		if maxLen > 0 && length > maxLen {
			exceed := length - maxLen
			last := buf[len(buf)-1]
			buf[len(buf)-1] = last[:len(last)-exceed]
			write("P", buf)
			buf, length = [][]byte{last[len(last)-exceed:]}, exceed
		}
		if isPrefix {
			continue
		}
		if stop {
			write("P", buf)
			return
		}
		write("F", buf)
		buf, length = nil, 0
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	max int
	b   bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// ioDir is where a process's FIFOs live: under the container's volatile
// root, one directory per process, as containerd lays them out.
func (c *criService) ioDir(containerID, processID string) string {
	return filepath.Join(c.stateDir, "containers", containerID, "io", processID)
}

// closeIO closes a FIFO set and removes the directories it leaves empty.
func closeIO(fs *fifoSet) {
	fs.close()
	ioRoot := filepath.Dir(fs.dir)
	os.Remove(ioRoot)               // fails while another exec's FIFOs are there
	os.Remove(filepath.Dir(ioRoot)) // the container's volatile root
}

// attachContainerLog copies a started container's output into its CRI log
// until the process is gone; without a log path the output is drained and
// dropped (a FIFO nobody reads would block the writer).
func (c *criService) attachContainerLog(id, logPath string, fs *fifoSet) {
	log := c.log.WithField("id", id)
	if logPath == "" {
		fs.copyOut(func(_ string, r io.Reader) { io.Copy(io.Discard, r) }, func() { closeIO(fs) })
		return
	}
	l, err := openContainerLog(logPath)
	if err != nil {
		log.WithError(err).Warn("failed to open container log; dropping its output")
		fs.copyOut(func(_ string, r io.Reader) { io.Copy(io.Discard, r) }, func() { closeIO(fs) })
		return
	}
	c.logsMu.Lock()
	if c.logs == nil {
		c.logs = map[string]*containerLog{}
	}
	c.logs[id] = l
	c.logsMu.Unlock()
	fs.copyOut(func(stream string, r io.Reader) {
		redirectLogs(c.clock, log, l, stream, r, maxContainerLogLineSize)
	}, func() {
		closeIO(fs)
		c.logsMu.Lock()
		if c.logs[id] == l {
			delete(c.logs, id)
		}
		c.logsMu.Unlock()
		l.Close()
	})
}

// containerLogOf is the log a running container's output goes to, if any.
func (c *criService) containerLogOf(id string) (*containerLog, bool) {
	c.logsMu.Lock()
	defer c.logsMu.Unlock()
	l, ok := c.logs[id]
	return l, ok
}
