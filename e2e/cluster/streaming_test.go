package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestClusterStreaming: kubectl exec, attach and port-forward go from
// kubectl through the API server to the node's kubelet (nodes named
// 127.0.1.I so the API server reaches them on loopback), which proxies the
// URL that fakecontainerd's CRI Exec, Attach or PortForward returned.
func TestClusterStreaming(t *testing.T) {
	c := clusterUp(t, 1, "baseline", "--names", "loopback")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const node = "127.0.1.1"
	pod := func(name string, container map[string]any) map[string]any {
		container["name"], container["image"] = "main", podImage
		return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name},
			"spec": map[string]any{"nodeName": node, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
				"containers": []map[string]any{container}}}
	}
	pods := map[string]map[string]any{
		"app": pod("app", map[string]any{"command": []string{"sleep", "3600"}}),
		// Reads its stdin (kubectl attach -i) until it ends, then exits.
		"reader": pod("reader", map[string]any{"stdin": true, "stdinOnce": true,
			"command": []string{"sh", "-c", "while read l; do echo got $l; done; echo bye"}}),
	}
	for name, manifest := range pods {
		if err := c.createPod(ctx, "default", manifest); err != nil {
			t.Fatal(err)
		}
		if err := poll(ctx, 2*time.Minute, func() error {
			p, err := c.pod(ctx, "default", name)
			if err != nil {
				return err
			}
			if p.readyCond() != "True" {
				return fmt.Errorf("pod %s is %s, Ready=%s", name, p.Status.Phase, p.readyCond())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	kubectl := func(stdin string, args ...string) (string, string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(c.runDir, "bin", "kubectl"), args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(c.runDir, "admin.kubeconfig"))
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	exitCode := func(err error) int {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return ee.ExitCode()
		}
		if err != nil {
			return -1
		}
		return 0
	}
	cases := []struct {
		name   string
		stdin  string
		args   []string
		stdout string
		code   int
	}{
		{"exec", "", []string{"exec", "app", "--", "sh", "-c", "echo hi"}, "hi\n", 0},
		{"exec exit code", "", []string{"exec", "app", "--", "sh", "-c", "echo hi; exit 3"}, "hi\n", 3},
		{"exec -i stdin", "piped\nthrough cat\n", []string{"exec", "-i", "app", "--", "cat"}, "piped\nthrough cat\n", 0},
		{"attach -i", "a\nb\n", []string{"attach", "-i", "reader"}, "got a\ngot b\nbye\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			stdout, stderr, err := kubectl(tc.stdin, tc.args...)
			if stdout != tc.stdout || exitCode(err) != tc.code {
				t.Errorf("kubectl %s: stdout %q, exit %d (%v), stderr %q; want %q, exit %d",
					strings.Join(tc.args, " "), stdout, exitCode(err), err, stderr, tc.stdout, tc.code)
			}
			t.Logf("kubectl %s: %v", strings.Join(tc.args, " "), time.Since(start).Round(time.Millisecond))
		})
	}
	t.Run("port-forward closed port", func(t *testing.T) { testPortForwardClosed(ctx, t, c) })
}

// testPortForwardClosed: kubectl port-forward listens locally; a
// connection to it is forwarded to port 80 of the pod, where nothing
// listens, so kubectl reports containerd's refusal and drops the
// connection.
func testPortForwardClosed(ctx context.Context, t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.runDir, "bin", "kubectl"), "port-forward", "pod/app", "--address", "127.0.0.1", ":80")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(c.runDir, "admin.kubeconfig"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cancel() // kills kubectl if it is still there
	// "Forwarding from 127.0.0.1:PORT -> 80"
	forwarding := regexp.MustCompile(`Forwarding from (127\.0\.0\.1:\d+) -> 80`)
	sc := bufio.NewScanner(stdout)
	var addr string
	for addr == "" && sc.Scan() {
		if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("kubectl port-forward printed no local address; stderr %q", stderr.String())
	}
	exited := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial kubectl's %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\n\r\n")
	// The connection is closed with nothing read back.
	if reply, err := io.ReadAll(conn); err != nil || len(reply) != 0 {
		t.Errorf("read from the forwarded connection: %q, %v; want EOF and nothing", reply, err)
	}
	// kubectl reports the refusal and gives up on the pod.
	if err := <-exited; err == nil {
		t.Errorf("kubectl port-forward exited 0")
	}
	want := "failed to connect to localhost:80 inside namespace"
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "connect: connection refused") {
		t.Errorf("kubectl port-forward stderr %q, want %q and connection refused", stderr.String(), want)
	}
}
