package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// adminCall does one admin API request as the test's user (the socket's
// owner) and decodes the answer into out.
func (d *daemon) adminCall(method, path string, body, out any) {
	t := d.t
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.sock+".admin")
		},
	}}
	var rd *bytes.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, "http://admin"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("admin %s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// faultInfo is what GET /v1/faults lists.
type faultInfo struct {
	ID      string `json:"id"`
	Point   string `json:"point"`
	Fired   uint64 `json:"fired"`
	Blocked int    `json:"blocked"`
}

// armAndWait arms spec at cri.ListContainers.before, starts a
// ListContainers on a connection of its own and waits until the fault
// holds it. The call's error arrives on the returned channel.
func (d *daemon) armAndWait(spec string) <-chan error {
	t := d.t
	t.Helper()
	var info faultInfo
	d.adminCall(http.MethodPost, "/v1/faults", map[string]string{"point": "cri.ListContainers.before", "target": "all", "spec": spec}, &info)
	rt, err := remote.NewRemoteRuntimeService(context.Background(), d.endpoint(), time.Minute, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := rt.ListContainers(context.Background(), &runtime.ContainerFilter{})
		done <- err
		_ = rt.Close(context.Background())
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var list []faultInfo
		d.adminCall(http.MethodGet, "/v1/faults", nil, &list)
		for _, f := range list {
			if f.ID == info.ID && f.Fired > 0 {
				return done
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fault %s never held the call", info.ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to the server.
func (d *daemon) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits for the server to exit within limit and returns how
// long it took.
func (d *daemon) waitExit(limit time.Duration) time.Duration {
	d.t.Helper()
	start := time.Now()
	select {
	case <-d.done:
	case <-time.After(limit):
		d.t.Fatalf("server still running %v later", limit)
	}
	return time.Since(start)
}

// socketsGone checks that the server removed its sockets.
func (d *daemon) socketsGone() {
	d.t.Helper()
	for _, s := range []string{d.sock, d.sock + ".ttrpc", d.sock + ".admin"} {
		if _, err := os.Stat(s); err == nil {
			d.t.Errorf("%s still exists after the server exited", s)
		}
	}
}

// TestGracefulShutdown: on SIGTERM (and SIGINT) an in-flight call that
// can finish does, one that cannot gets Unavailable once the grace period
// ends, the server exits 0 and removes its sockets, and everything it
// reported done is there after a restart; a second signal during a long
// shutdown exits at once.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	// 1 scenario second is 0.1 s.
	d := newDaemon(t, "--time-scale", "0.1")
	pc := d.podConfig("kept", d.dir+"/pod-logs")
	d.pull("busybox")
	podID := d.runp(pc)
	ctrID := d.create(podID, d.containerConfig("kept", nil), pc)
	d.startContainer(ctrID)

	t.Run("in-flight call finishes", func(t *testing.T) {
		d := d.on(t)
		done := d.armAndWait("delay(5s)") // 0.5 s of wall time
		d.disconnect()
		d.signal(syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("in-flight ListContainers across SIGTERM: %v, want it to finish", err)
		}
		took := d.waitExit(exitTimeout)
		if !d.cmd.ProcessState.Success() {
			t.Errorf("exit %v after SIGTERM, want 0", d.cmd.ProcessState)
		}
		t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
		d.socketsGone()
	})

	t.Run("stuck call gets Unavailable", func(t *testing.T) {
		d := d.on(t)
		d.start()
		// The state came back: the shutdown lost nothing.
		if st := d.inspect(ctrID); st.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Errorf("after a graceful restart the container is %v, want RUNNING", st.State)
		}
		done := d.armAndWait("block")
		d.disconnect()
		d.signal(syscall.SIGINT)
		time.Sleep(300 * time.Millisecond)
		if !d.running() {
			t.Fatalf("server exited at once with a call in flight; want it to wait for the grace period")
		}
		// No new calls are taken while it drains.
		if _, err := remote.NewRemoteRuntimeService(context.Background(), d.endpoint(), time.Second, nil, false); err == nil {
			t.Errorf("a new client connected during the shutdown")
		}
		took := d.waitExit(exitTimeout)
		err := <-done
		if c := status.Code(err); c != codes.Unavailable {
			t.Errorf("blocked ListContainers after the grace period: %v (%v), want Unavailable", c, err)
		}
		if !d.cmd.ProcessState.Success() {
			t.Errorf("exit %v after SIGINT, want 0", d.cmd.ProcessState)
		}
		t.Logf("exited %v after SIGINT", took.Round(time.Millisecond))
		d.socketsGone()
	})

	t.Run("second signal exits at once", func(t *testing.T) {
		d := d.on(t)
		d.start()
		done := d.armAndWait("block")
		d.disconnect()
		d.signal(syscall.SIGTERM)
		time.Sleep(300 * time.Millisecond)
		if !d.running() {
			t.Fatalf("server exited before the second signal")
		}
		d.signal(syscall.SIGTERM)
		took := d.waitExit(3 * time.Second)
		if err := <-done; status.Code(err) != codes.Unavailable {
			t.Errorf("blocked call after the second signal: %v, want Unavailable", err)
		}
		if d.cmd.ProcessState.Success() {
			t.Errorf("exit 0 after a second signal; want non-zero (it did not finish draining)")
		}
		t.Logf("exited %v after the second signal (%v)", took.Round(time.Millisecond), d.cmd.ProcessState)
		d.socketsGone()
	})

	d.start()
	if st := d.inspect(ctrID); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after the shutdowns the container is %v, want RUNNING", st.State)
	}
	if p := d.inspectp(podID); p.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Errorf("after the shutdowns the pod is %v, want READY", p.State)
	}
	d.stop()
}
