package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// getUnix fetches path from an HTTP server on a unix socket.
func getUnix(t *testing.T, socket, path string) string {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://fakecontainerd" + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, socket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s on %s: %s", path, socket, resp.Status)
	}
	return string(body)
}

// waitFile waits until path exists and is not empty, and returns it.
func waitFile(t *testing.T, path string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if data, err := os.ReadFile(path); err == nil && len(data) > 0 {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within %v", path, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestObservability: the flags serve metrics and pprof on unix sockets;
// SIGUSR1 dumps the server's goroutines to its log and to a file in the
// state dir, as containerd does, and the server carries on.
func TestObservability(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "fcdo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	metricsSock, debugSock := filepath.Join(dir, "m.sock"), filepath.Join(dir, "d.sock")
	d := newDaemon(t, "--metrics-address", metricsSock, "--debug-address", "unix://"+debugSock)

	if _, err := d.rt.Version(d.ctx(), "0.1.0"); err != nil {
		t.Fatal(err)
	}
	text := getUnix(t, metricsSock, "/v1/metrics")
	if !strings.Contains(text, `fakecontainerd_cri_request_duration_seconds_count{code="OK",method="Version"}`) {
		t.Errorf("/v1/metrics has no Version request count:\n%.2000s", text)
	}
	if got := getUnix(t, debugSock, "/debug/pprof/goroutine?debug=1"); !strings.Contains(got, "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine?debug=1 is not a goroutine profile:\n%.500s", got)
	}

	if err := syscall.Kill(d.pid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.state, fmt.Sprintf("fakecontainerd.%d.stacks.log", d.pid()))
	dump := waitFile(t, path, 10*time.Second)
	if !strings.Contains(dump, "goroutine ") || !strings.Contains(dump, "main.") {
		t.Errorf("%s is not a goroutine dump:\n%.1000s", path, dump)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		logData, _ := os.ReadFile(d.log)
		log := string(logData)
		if strings.Contains(log, "goroutine stack dump written to "+path) {
			if !strings.Contains(log, "=== BEGIN goroutine stack dump ===") || !strings.Contains(log, "=== END goroutine stack dump ===") {
				t.Errorf("the log has no BEGIN/END goroutine stack dump")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say where the dump went\n%s", d.logTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// SIGUSR1 does not stop the server.
	if _, err := d.rt.Version(d.ctx(), "0.1.0"); err != nil {
		t.Fatalf("Version after SIGUSR1: %v", err)
	}
	d.stop()
	for _, sock := range []string{metricsSock, debugSock} {
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("%s left behind after a clean stop", sock)
		}
	}
}

// TestShimStackDump: a process-mode shim dumps its goroutines on SIGUSR1
// too, next to its socket and log, and keeps serving.
func TestShimStackDump(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--shim-mode", "process")
	pc := d.podConfig("dumped", d.dir+"/pod-logs")
	d.pull("busybox")
	podID := d.runp(pc)
	shims := d.podShims(podID)
	if len(shims) != 1 {
		t.Fatalf("shim processes for pod %s: %v, want one", podID, shims)
	}
	pid := shims[0].pid
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.state, "s", fmt.Sprintf("fakecontainerd-shim.%d.stacks.log", pid))
	if dump := waitFile(t, path, 10*time.Second); !strings.Contains(dump, "goroutine ") {
		t.Errorf("%s is not a goroutine dump:\n%.1000s", path, dump)
	}
	if !alive(pid) {
		t.Fatalf("shim %d died of SIGUSR1", pid)
	}
	if st := d.inspectp(podID); st.GetState().String() != "SANDBOX_READY" {
		t.Errorf("pod after the shim's dump: %v, want SANDBOX_READY", st.GetState())
	}
}

// TestObservabilityAddressRefused: metrics and pprof are never served on
// an address reachable from the network; flags and config keys say which.
func TestObservabilityAddressRefused(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "fcde")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	where := []string{"--address", filepath.Join(dir, "cri.sock"), "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state")}
	cases := []struct {
		name string
		args []string
		file string
		want []string
	}{
		{name: "metrics flag", args: []string{"--metrics-address", "0.0.0.0:9100"}, want: []string{"--metrics-address", "0.0.0.0", "loopback"}},
		{name: "debug flag", args: []string{"--debug-address", "10.0.0.1:6060"}, want: []string{"--debug-address", "10.0.0.1"}},
		{name: "metrics flag relative socket", args: []string{"--metrics-address", "metrics.sock"}, want: []string{"--metrics-address"}},
		{name: "metrics key", file: "version = 2\n[metrics]\n  address = \"0.0.0.0:9100\"\n", want: []string{"metrics.address", "0.0.0.0"}},
		{name: "debug key", file: "version = 2\n[debug]\n  address = \":6060\"\n", want: []string{"debug.address"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".toml", tc.file))
			}
			out, code := fcd(t, 30*time.Second, append(args, where...)...)
			if code == 0 || code == -1 {
				t.Fatalf("fakecontainerd %s: exit %d, want it to refuse to start\n%s", strings.Join(args, " "), code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("fakecontainerd %s: message does not name %q:\n%s", strings.Join(args, " "), w, out)
				}
			}
		})
	}
}
