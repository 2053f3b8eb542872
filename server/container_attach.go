package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/fsnotify/fsnotify"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// Attach prepares a streaming endpoint to attach to a running container and
// returns its URL (containerd's container_attach.go).
func (c *criService) Attach(ctx context.Context, r *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("failed to find container in store: %w", err)
	}
	if st := cntr.Status.Get().State(); st != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, errState("container is in %s state", criContainerStateToString(st))
	}
	return c.streamServer.GetAttach(r)
}

// attachContainer is containerd's: it connects the client's streams to the
// container's main process until the process exits, the client goes away
// or (stdin not StdinOnce) the client's stdin ends. containerd adds the
// streams to the container's IO, which its daemon reads from the process's
// FIFOs; here the shim writes the output to the CRI log itself (README,
// Deliberate differences), so the output is followed in that log from the
// moment of the attach on, as it is written, decoded from the CRI format
// (no history, as containerd). The client's stdin goes to the process's
// stdin when the container was created with stdin.
func (c *criService) attachContainer(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer,
	tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cntr, err := c.containerStore.Get(id)
	if err != nil {
		return fmt.Errorf("failed to find container %q in store: %w", id, err)
	}
	id = cntr.ID
	if st := cntr.Status.Get().State(); st != runtime.ContainerState_CONTAINER_RUNNING {
		return errState("container is in %s state", criContainerStateToString(st))
	}
	task, err := c.shims.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("failed to load task: %w", err)
	}
	handleResizing(ctx, resize, func(size remotecommand.TerminalSize) {
		if err := task.Resize(ctx, uint32(size.Width), uint32(size.Height)); err != nil {
			c.log.WithError(err).WithField("id", id).Errorf("Failed to resize task %q console", id)
		}
	})
	// The exit: the shim's Wait returns when the process has exited (and
	// its output is in the log), whatever the daemon's exit handling does.
	exited := make(chan struct{})
	go func() {
		task.WaitExit(ctx)
		close(exited)
	}()
	// Follow the log from its end before any of the client's stdin reaches
	// the process, or the output of that stdin could be written before the
	// follower's starting point and never reach the client.
	var f *logFollower
	if cntr.LogPath != "" {
		if f, err = newLogFollower(cntr.LogPath); err != nil {
			return fmt.Errorf("failed to attach to the output of container %q: %w", id, err)
		}
		defer f.close()
	}
	detached := make(chan struct{})
	if stdin != nil && cntr.Config.GetStdin() {
		go c.attachStdin(ctx, id, task, stdin, cntr.Config.GetStdinOnce() && !tty, detached)
	}
	if f == nil {
		select {
		case <-exited:
		case <-detached:
		case <-ctx.Done():
		}
		return nil
	}
	for {
		if err := f.copyTo(stdout, stderr); err != nil {
			return nil // the client went away
		}
		select {
		case <-exited:
			f.copyTo(stdout, stderr)
			return nil
		case <-detached:
			return nil
		case <-ctx.Done():
			return nil
		case <-f.changed():
		}
	}
}

// logFollower reads a CRI log from its end as it grows, and from the start
// of the new file after a rotation (kubelet renames the file, the next line
// creates it again).
type logFollower struct {
	path    string
	w       *fsnotify.Watcher
	f       *os.File
	r       *bufio.Reader
	partial []byte
}

func newLogFollower(path string) (*logFollower, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch log %q: %w", path, err)
	}
	// The directory: a rotation replaces the file.
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch log directory of %q: %w", path, err)
	}
	l := &logFollower{path: path, w: w}
	if f, err := os.Open(path); err == nil {
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			w.Close()
			return nil, fmt.Errorf("seek log %q: %w", path, err)
		}
		l.f, l.r = f, bufio.NewReader(f)
	}
	return l, nil
}

// changed fires on any change in the log's directory; a spurious wake-up
// just reads nothing.
func (l *logFollower) changed() <-chan fsnotify.Event { return l.w.Events }

// copyTo writes every complete entry written since the last call, each to
// its stream (stderr to stdout when stderr is nil: a tty has one stream).
// The error is the client's.
func (l *logFollower) copyTo(stdout, stderr io.Writer) error {
	if l.f != nil && l.rotated() {
		l.readEntries(stdout, stderr) // the rest of the old file
		l.f.Close()
		l.f, l.r = nil, nil
	}
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return nil // not there yet: wait for the next line to create it
		}
		l.f, l.r = f, bufio.NewReader(f)
	}
	return l.readEntries(stdout, stderr)
}

// rotated reports that the path names another file than the one open.
func (l *logFollower) rotated() bool {
	cur, err := l.f.Stat()
	if err != nil {
		return true
	}
	now, err := os.Stat(l.path)
	return err != nil || !os.SameFile(cur, now)
}

func (l *logFollower) readEntries(stdout, stderr io.Writer) error {
	for {
		line, err := l.r.ReadBytes('\n')
		if err != nil {
			// An entry not complete yet: keep it for the next read.
			l.partial = append(l.partial, line...)
			return nil
		}
		if len(l.partial) > 0 {
			line = append(l.partial, line...)
			l.partial = nil
		}
		stream, content, ok := parseCRILogEntry(line)
		if !ok {
			continue
		}
		w := stdout
		if stream == streamStderr && stderr != nil {
			w = stderr
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(content); err != nil {
			return err
		}
	}
}

// parseCRILogEntry reads "<time> <stream> <F|P> <content>\n": a full (F)
// entry's content ends its line, a partial (P) one's goes on in the next.
func parseCRILogEntry(line []byte) (stream string, content []byte, ok bool) {
	fields := bytes.SplitN(line, []byte{' '}, 4)
	if len(fields) != 4 {
		return "", nil, false
	}
	content = fields[3]
	if string(fields[2]) == "P" {
		content = bytes.TrimSuffix(content, []byte{'\n'})
	}
	return string(fields[1]), content, true
}

func (l *logFollower) close() {
	l.w.Close()
	if l.f != nil {
		l.f.Close()
	}
}

// attachStdin copies the client's stdin into the container's until it
// ends. Then, as containerd's container IO: with StdinOnce (and no tty) the
// process's stdin is closed (task CloseIO) and the output stays attached;
// otherwise the process's stdin stays open and the attach ends (detached).
func (c *criService) attachStdin(ctx context.Context, id string, task interface{ CloseIO(context.Context) error },
	stdin io.Reader, once bool, detached chan<- struct{}) {
	log := c.log.WithField("id", id)
	// The shim holds the read end (and a write end of its own).
	f, err := os.OpenFile(c.containerStdinPath(id), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		log.WithError(err).Error("Failed to open the container's stdin for attach")
		close(detached)
		return
	}
	if _, err := io.Copy(f, stdin); err != nil && !errors.Is(err, os.ErrClosed) {
		log.WithError(err).Debug("Attach stdin copy ended")
	}
	f.Close()
	if !once {
		close(detached)
		return
	}
	if err := task.CloseIO(ctx); err != nil && ctx.Err() == nil {
		log.WithError(err).Error("Failed to close stdin")
	}
}

// containerStdinPath is the FIFO of a container's stdin (a container
// created with stdin), in its volatile root.
func (c *criService) containerStdinPath(id string) string {
	return filepath.Join(c.stateDir, "containers", id, "stdin")
}

// createStdinFIFO makes the FIFO of a container's stdin.
func createStdinFIFO(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create stdin directory: %w", err)
	}
	if err := syscall.Mkfifo(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create stdin fifo: %w", err)
	}
	return nil
}
