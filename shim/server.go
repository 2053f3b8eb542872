package shim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// SocketPath is where the shim of a group listens. containerd uses the full
// sha256 under /run/containerd/s; we keep 24 hex characters so the path fits
// in sun_path even under a deep --state directory.
func SocketPath(stateDir, group string) string {
	sum := sha256.Sum256([]byte(Namespace + "/" + group))
	return filepath.Join(stateDir, "s", hex.EncodeToString(sum[:])[:24])
}

// RuncRoot is where per-container process records live.
func RuncRoot(stateDir string) string { return filepath.Join(stateDir, "runc", Namespace) }

// ServerConfig configures one shim: a ttrpc task service on its own socket.
type ServerConfig struct {
	Group         string
	StateDir      string
	EventsAddress string
	Clock         clock.Clock
	Defaults      Defaults
	Log           *logrus.Entry
	Faults        *faults.Injector
	Toggles       *faults.Toggles
	Target        func(id string) faults.Target
	Locks         LockObserver
	Unmounted     UnmountObserver
	// records: see ServiceConfig.records.
	records map[string][]*processRecord
}

// Server is a running shim.
type Server struct {
	svc    *Service
	ttrpc  *ttrpc.Server
	ln     net.Listener
	pub    *RemotePublisher
	socket string

	done      chan struct{} // closed when Shutdown asks the shim to exit
	doneOnce  sync.Once
	closeOnce sync.Once
}

// NewServer listens on the group's socket and restores the group's processes.
func NewServer(cfg ServerConfig) (*Server, error) {
	socket := SocketPath(cfg.StateDir, cfg.Group)
	if err := os.MkdirAll(filepath.Dir(socket), 0o711); err != nil {
		return nil, fmt.Errorf("create shim socket dir for %s: %w", cfg.Group, err)
	}
	ln, err := listenUnix(socket)
	if err != nil {
		return nil, fmt.Errorf("listen shim socket for %s: %w", cfg.Group, err)
	}
	s := &Server{ln: ln, socket: socket, done: make(chan struct{})}
	s.pub = NewRemotePublisher(cfg.EventsAddress, cfg.Clock, cfg.Log)
	svc, err := NewService(ServiceConfig{
		Group: cfg.Group, RuncRoot: RuncRoot(cfg.StateDir), Clock: cfg.Clock, Defaults: cfg.Defaults,
		Publisher: s.pub, Log: cfg.Log, OnShutdown: s.requestExit,
		Faults: cfg.Faults, Toggles: cfg.Toggles, Target: cfg.Target, Locks: cfg.Locks,
		Unmounted: cfg.Unmounted, records: cfg.records,
	})
	if err != nil {
		ln.Close()
		s.pub.Close()
		return nil, err
	}
	s.svc = svc
	ts, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(svc.Interceptor))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("new ttrpc server for %s: %w", cfg.Group, err)
	}
	s.ttrpc = ts
	taskAPI.RegisterTTRPCTaskService(ts, svc)
	svc.registerKernel(ts)
	return s, nil
}

// listenUnix removes a stale socket (one nobody answers on) before listening.
func listenUnix(path string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: a shim is already serving it", path)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Serve answers task requests until Close.
func (s *Server) Serve(ctx context.Context) error {
	err := s.ttrpc.Serve(ctx, s.ln)
	if errors.Is(err, ttrpc.ErrServerClosed) {
		return nil
	}
	return err
}

// Done is closed when the daemon's Shutdown asks this shim to exit.
func (s *Server) Done() <-chan struct{} { return s.done }

func (s *Server) requestExit() { s.doneOnce.Do(func() { close(s.done) }) }

// Close stops the shim as if its process ended: connections drop, pending
// unmounts and exit timers stop, the socket goes away.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.ttrpc != nil {
			s.ttrpc.Close()
		} else {
			s.ln.Close()
		}
		if s.svc != nil {
			s.svc.Close()
		}
		s.pub.Close()
		_ = os.Remove(s.socket)
		s.requestExit()
	})
	return nil
}

// Run is the body of a `fakecontainerd shim` process: serve until the
// daemon's Shutdown or ctx ends.
func Run(ctx context.Context, cfg ServerConfig) error {
	s, err := NewServer(cfg)
	if err != nil {
		return err
	}
	errCh := make(chan error, 1)
	go func() { errCh <- s.Serve(context.Background()) }()
	select {
	case <-ctx.Done():
	case <-s.Done():
	case err = <-errCh:
	}
	s.Close()
	return err
}
