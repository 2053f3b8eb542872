package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/util/cert"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/utils/exec"

	"github.com/fakecontainerd/fakecontainerd/configs"
)

// The CRI streaming server, as containerd's pkg/cri/server/streaming.go
// builds it: Exec, Attach and PortForward hand out a URL on it (kubelet's
// streaming library, k8s.io/cri-streaming: SPDY and websocket), and the
// runtime below serves the streams once a client dials the URL.

// streamServer is the library's server on its own listener. The listener
// is opened before any URL is handed out, so the URLs name the real port
// (port "0" picks one).
type streamServer struct {
	streaming.Server
	http *http.Server
	ln   net.Listener
}

// newStreamServer listens on stream_server_address:stream_server_port and
// builds the server with containerd's config: the idle timeout, and TLS
// with the configured key pair or a self-signed certificate.
func newStreamServer(c *criService, cfg configs.CRIConfig) (*streamServer, error) {
	config := streaming.DefaultConfig
	if cfg.StreamIdleTimeout != "" {
		d, err := time.ParseDuration(cfg.StreamIdleTimeout)
		if err != nil {
			return nil, fmt.Errorf("invalid stream idle timeout: %w", err)
		}
		config.StreamIdleTimeout = d
	}
	if err := configs.CheckStreamAddress(cfg.StreamServerAddress); err != nil {
		return nil, fmt.Errorf("stream_server_address: %w", err)
	}
	config.Addr = net.JoinHostPort(cfg.StreamServerAddress, cfg.StreamServerPort)
	if cfg.EnableTLSStreaming {
		tlsCert, err := streamTLSCert(cfg.X509KeyPairStreaming)
		if err != nil {
			return nil, err
		}
		config.TLSConfig = &tls.Config{Certificates: []tls.Certificate{tlsCert}}
	}
	ln, err := net.Listen("tcp", config.Addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on stream server address %s: %w", config.Addr, err)
	}
	scheme := "http"
	if config.TLSConfig != nil {
		scheme = "https"
	}
	config.BaseURL = &url.URL{Scheme: scheme, Host: ln.Addr().String()}
	srv, err := streaming.NewServer(config, &streamRuntime{c: c})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("failed to create stream server: %w", err)
	}
	s := &streamServer{Server: srv, ln: ln, http: &http.Server{Handler: srv, TLSConfig: config.TLSConfig}}
	go func() {
		var err error
		if config.TLSConfig != nil {
			err = s.http.ServeTLS(ln, "", "")
		} else {
			err = s.http.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.WithError(err).Error("Failed to start streaming server")
		}
	}()
	c.log.WithField("address", ln.Addr().String()).Info("Start streaming server")
	return s, nil
}

// Addr is where the server listens.
func (s *streamServer) Addr() string { return s.ln.Addr().String() }

// close ends the server and every open stream.
func (s *streamServer) close() {
	if s != nil {
		s.http.Close()
	}
}

// streamTLSCert is the configured key pair, or a self-signed certificate
// (containerd's newTLSCert: the host name and every interface address).
func streamTLSCert(kp configs.X509KeyPairStreaming) (tls.Certificate, error) {
	if kp.TLSCertFile != "" && kp.TLSKeyFile != "" {
		c, err := tls.LoadX509KeyPair(kp.TLSCertFile, kp.TLSKeyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("failed to load x509 key pair for stream server: %w", err)
		}
		return c, nil
	}
	hostName, err := os.Hostname()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to get hostname: %w", err)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to get host IP addresses: %w", err)
	}
	var ips []net.IP
	var names []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips, names = append(ips, n.IP), append(names, n.IP.String())
		}
	}
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey(hostName, ips, names)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate key could not be created: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate could not be loaded: %w", err)
	}
	return c, nil
}

// streamRuntime is containerd's: what the server runs once a client has
// dialled a URL.
type streamRuntime struct{ c *criService }

// Exec runs the command as an exec process (execInternal, as ExecSync);
// a non-zero exit is an exec.CodeExitError, which the server sends to the
// client as the exit code.
func (s *streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser,
	tty bool, resize <-chan remotecommand.TerminalSize) error {
	code, err := s.c.execInContainer(s.c.lifetime, containerID, execOptions{
		cmd: cmd, stdin: readerOrNil(stdin), stdout: writerOrNil(stdout), stderr: writerOrNil(stderr), tty: tty, resize: resize,
	})
	if err != nil {
		return fmt.Errorf("failed to exec in container: %w", err)
	}
	if code == 0 {
		return nil
	}
	return &exec.CodeExitError{
		Err:  fmt.Errorf("error executing command %v, exit code %d", cmd, code),
		Code: int(code),
	}
}

func (s *streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool,
	resize <-chan remotecommand.TerminalSize) error {
	return s.c.attachContainer(s.c.lifetime, containerID, readerOrNil(in), writerOrNil(out), writerOrNil(errw), tty, resize)
}

func (s *streamRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > math.MaxUint16 {
		return fmt.Errorf("invalid port %d", port)
	}
	return s.c.portForward(s.c.lifetime, podSandboxID, port, stream)
}

// writerOrNil keeps a stream the client did not ask for nil: the
// websocket transport passes a typed nil pointer in the interface.
func writerOrNil(w io.WriteCloser) io.Writer {
	if isNilStream(w) {
		return nil
	}
	return w
}

func readerOrNil(r io.Reader) io.Reader {
	if isNilStream(r) {
		return nil
	}
	return r
}

func isNilStream(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// handleResizing calls resizeFunc for each size from resize until ctx ends
// (containerd's). The fake's terminal has no size: the shim accepts and
// ignores it.
func handleResizing(ctx context.Context, resize <-chan remotecommand.TerminalSize, resizeFunc func(size remotecommand.TerminalSize)) {
	if resize == nil {
		return
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case size, ok := <-resize:
				if !ok {
					return
				}
				if size.Height < 1 || size.Width < 1 {
					continue
				}
				resizeFunc(size)
			}
		}
	}()
}

// execInContainer is containerd's: the container must still be running
// when the client dials the URL.
func (c *criService) execInContainer(ctx context.Context, id string, opts execOptions) (uint32, error) {
	cntr, err := c.containerStore.Get(id)
	if err != nil {
		return 0, fmt.Errorf("failed to find container %q in store: %w", id, err)
	}
	if st := cntr.Status.Get().State(); st != runtime.ContainerState_CONTAINER_RUNNING {
		return 0, errState("container is in %s state", criContainerStateToString(st))
	}
	c.log.WithFields(logrus.Fields{"id": cntr.ID, "cmd": opts.cmd, "tty": opts.tty, "stdin": opts.stdin != nil}).Debug("Streaming exec")
	return c.execInternal(ctx, cntr.ID, opts)
}
