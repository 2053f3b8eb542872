// Package streamclient dials the URLs that CRI Exec, Attach and PortForward
// return, with client-go's own clients, as kubelet's proxy and kubectl do:
// remotecommand's SPDY or websocket executor, and the SPDY port-forward
// protocol (portforward.k8s.io). The suites use it against the server and
// the built binary.
package streamclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	v1 "k8s.io/api/core/v1"
	streamproto "k8s.io/apimachinery/pkg/util/remotecommand"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/exec"
)

// Transport names a streaming protocol.
type Transport string

const (
	SPDY      Transport = "spdy"
	WebSocket Transport = "websocket"
)

// Result is what a remote command gave back.
type Result struct {
	Stdout, Stderr string
	// Code is the exit code (0 for success).
	Code int
}

// Stream runs the remote command at rawURL (an Exec or Attach URL) with
// stdin (nil: none) and tty. The URL must have been asked for with stdout,
// and stderr unless tty (the client opens those streams). A non-zero exit
// is Result.Code, not an error.
func Stream(ctx context.Context, t Transport, rawURL string, stdin io.Reader, tty bool) (Result, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Result{}, fmt.Errorf("parse stream URL %q: %w", rawURL, err)
	}
	cfg := &restclient.Config{Host: u.Scheme + "://" + u.Host}
	var ex remotecommand.Executor
	switch t {
	case SPDY:
		ex, err = remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	case WebSocket:
		// The CRI streaming server's websocket speaks v1-v4 (kubelet's
		// proxy and the API server use SPDY towards it); v4 cannot
		// half-close stdin, so a command waiting for stdin's EOF waits
		// for the connection to end.
		ex, err = remotecommand.NewWebSocketExecutorForProtocols(cfg, http.MethodGet, rawURL, streamproto.StreamProtocolV4Name)
	default:
		return Result{}, fmt.Errorf("unknown transport %q", t)
	}
	if err != nil {
		return Result{}, fmt.Errorf("new %s executor: %w", t, err)
	}
	var stdout, stderr bytes.Buffer
	opts := remotecommand.StreamOptions{Stdin: stdin, Stdout: &stdout, Tty: tty}
	if !tty {
		opts.Stderr = &stderr
	}
	err = ex.StreamWithContext(ctx, opts)
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr exec.CodeExitError
	if errors.As(err, &exitErr) {
		res.Code = exitErr.Code
		return res, nil
	}
	return res, err
}

// PortForward opens one forwarded connection to port at rawURL (a
// PortForward URL), sends data and returns what came back and the
// server's error message for the connection ("" for none).
func PortForward(ctx context.Context, rawURL string, port int32, data []byte) (reply []byte, errMsg string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("parse port-forward URL %q: %w", rawURL, err)
	}
	rt, upgrader, err := spdy.RoundTripperFor(&restclient.Config{Host: u.Scheme + "://" + u.Host})
	if err != nil {
		return nil, "", fmt.Errorf("spdy round tripper: %w", err)
	}
	conn, proto, err := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u).Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, "", fmt.Errorf("dial %s: %w", rawURL, err)
	}
	defer conn.Close()
	if proto != portforward.PortForwardProtocolV1Name {
		return nil, "", fmt.Errorf("protocol %q negotiated, want %q", proto, portforward.PortForwardProtocolV1Name)
	}
	// As client-go's PortForwarder does for each local connection: an
	// error stream, then the data stream, with the same request id.
	headers := http.Header{}
	headers.Set(v1.StreamType, v1.StreamTypeError)
	headers.Set(v1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(v1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		return nil, "", fmt.Errorf("create error stream: %w", err)
	}
	errStream.Close()
	headers.Set(v1.StreamType, v1.StreamTypeData)
	dataStream, err := conn.CreateStream(headers)
	if err != nil {
		return nil, "", fmt.Errorf("create data stream: %w", err)
	}
	type msg struct {
		b   []byte
		err error
	}
	errCh := make(chan msg, 1)
	go func() {
		b, err := io.ReadAll(errStream)
		errCh <- msg{b, err}
	}()
	if len(data) > 0 {
		dataStream.Write(data)
	}
	dataStream.Close()
	replyCh := make(chan msg, 1)
	go func() {
		b, err := io.ReadAll(dataStream)
		replyCh <- msg{b, err}
	}()
	var e, r msg
	select {
	case e = <-errCh:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	if e.err != nil {
		return nil, "", fmt.Errorf("read error stream: %w", e.err)
	}
	if len(e.b) > 0 {
		return nil, string(e.b), nil // the connection failed: no data follows
	}
	select {
	case r = <-replyCh:
	case <-ctx.Done():
		return nil, string(e.b), ctx.Err()
	}
	return r.b, string(e.b), nil
}
