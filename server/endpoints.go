package server

import (
	"errors"
	"expvar"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/fakecontainerd/fakecontainerd/configs"
)

// httpEndpoint is one of the optional HTTP endpoints: metrics ([metrics]
// address) or debug ([debug] address). Each is a unix socket or a loopback
// host:port, never anything reachable from the network.
type httpEndpoint struct {
	name string
	srv  *http.Server
	ln   net.Listener
	path string // the socket file, for unix sockets
}

// listenEndpoint listens on a [debug] or [metrics] address: "unix://" +
// absolute path, an absolute path, or a loopback host:port. The address is
// checked again here, so a caller that skips config validation still
// cannot expose pprof to the network.
func listenEndpoint(key, addr string, mode os.FileMode) (net.Listener, string, error) {
	if err := configs.CheckListenAddress(addr); err != nil {
		return nil, "", fmt.Errorf("%s: %w", key, err)
	}
	path, isUnix := strings.CutPrefix(addr, "unix://")
	if isUnix || strings.HasPrefix(addr, "/") {
		ln, err := listenUnix(path, mode)
		if err != nil {
			return nil, "", fmt.Errorf("%s: listen on %s: %w", key, path, err)
		}
		return ln, path, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("%s: listen on %s: %w", key, addr, err)
	}
	return ln, "", nil
}

func serveEndpoint(name, key, addr string, mode os.FileMode, h http.Handler, log *logrus.Entry) (*httpEndpoint, error) {
	ln, path, err := listenEndpoint(key, addr, mode)
	if err != nil {
		return nil, err
	}
	e := &httpEndpoint{name: name, ln: ln, path: path, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Errorf("%s endpoint stopped", name)
		}
	}()
	log.WithField("address", e.Address()).Infof("serving %s", name)
	return e, nil
}

// Address is where the endpoint listens: the socket path, or host:port
// with the port chosen when the config said 0.
func (e *httpEndpoint) Address() string {
	if e == nil {
		return ""
	}
	if e.path != "" {
		return e.path
	}
	return e.ln.Addr().String()
}

func (e *httpEndpoint) close() {
	if e == nil {
		return
	}
	e.srv.Close()
	if e.path != "" {
		os.Remove(e.path)
	}
}

// metricsHandler serves the registry at containerd's /v1/metrics and at
// the usual /metrics.
func (m *metrics) handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("/v1/metrics", h)
	mux.Handle("/metrics", h)
	return mux
}

// debugHandler is containerd's debug endpoint: pprof and expvar, on a mux
// of its own (net/http/pprof's import also fills http.DefaultServeMux,
// which nothing here serves).
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	return mux
}
