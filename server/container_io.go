package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// An exec's output, as containerd's CRI plugin collects it: a FIFO per
// stream (cio.NewFIFOSetInDir under the container's volatile root), which
// the shim's exec process writes and the daemon reads.

const (
	// maxExecSyncOutput caps each collected ExecSync stream (containerd
	// 1.7's maxStreamSize), so an endless printer cannot exhaust memory.
	maxExecSyncOutput = 16 << 20

	streamStdout = "stdout"
	streamStderr = "stderr"
)

// fifoSet is one process's output FIFOs and the daemon's read ends.
type fifoSet struct {
	dir            string
	stdin          string   // "" without stdin
	stdinW         *os.File // the daemon's write end of stdin
	stdout, stderr string   // "" when the stream is not wanted (tty: no stderr)
	readers        map[string]*os.File
}

// newFIFOSet makes the FIFOs in dir and opens their read ends without
// blocking, before the shim opens the write ends (as containerd/fifo does).
// The readers must only be read once the shim has opened its ends: a FIFO
// with no writer reads EOF.
//
// With stdin, its FIFO is opened read-write here (containerd/fifo's trick
// for a write end that must not block for a reader): the shim's read end
// then never sees a false EOF, and closing it here is the EOF.
func newFIFOSet(dir, id string, tty, stdin bool) (_ *fifoSet, retErr error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create io directory of %s: %w", id, err)
	}
	fs := &fifoSet{dir: dir, readers: map[string]*os.File{}}
	defer func() {
		if retErr != nil {
			fs.close()
		}
	}()
	if stdin {
		path := filepath.Join(dir, id+"-stdin")
		if err := syscall.Mkfifo(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create stdin fifo of %s: %w", id, err)
		}
		f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("open stdin fifo of %s: %w", id, err)
		}
		fs.stdin, fs.stdinW = path, f
	}
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
	if fs.stdinW != nil {
		fs.stdinW.Close()
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

// copyIn copies in to the process's stdin until in ends, then closes the
// write end (the process reads EOF) and calls closed, as containerd's
// exec IO does with StdinOnce (closed is the task's CloseIO). A process that
// exits first ends the copy at its next write.
func (fs *fifoSet) copyIn(in io.Reader, closed func()) {
	if fs.stdinW == nil || in == nil {
		return
	}
	go func() {
		io.Copy(fs.stdinW, in)
		fs.stdinW.Close()
		if closed != nil {
			closed()
		}
	}()
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

// createLogFile creates a container's log file and its directory.
func createLogFile(path string) error {
	f, err := openLogFile(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// openLogFile opens a container's log file for appending, creating it and
// its directory.
func openLogFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create log directory for %q: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("failed to create and open log file %q: %w", path, err)
	}
	return f, nil
}
