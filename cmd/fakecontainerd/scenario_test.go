package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/scenario"
	"github.com/fakecontainerd/fakecontainerd/server"
)

// run runs the CLI with args and returns its output and error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runTo(&out, args...)
	return out.String(), err
}

// runTo runs the CLI with args, writing its output to w.
func runTo(w io.Writer, args ...string) error {
	app := newApp()
	app.Writer, app.ErrWriter = w, io.Discard
	return app.Run(append([]string{"fakecontainerd"}, args...))
}

// watchedBuffer is an output buffer that closes seen once the output holds
// a string, so a test can act at a point of a command's run.
type watchedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func newWatchedBuffer(want string) *watchedBuffer {
	return &watchedBuffer{want: want, seen: make(chan struct{})}
}

func (b *watchedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.want != "" && strings.Contains(b.buf.String(), b.want) {
		b.want = ""
		close(b.seen)
	}
	return n, err
}

func (b *watchedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestScenarioListAndShow(t *testing.T) {
	out, err := run(t, "scenario", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"cni-teardown-hang", "exec-probe-storm", "fsync-behind-writeback", "imagepull-bbolt", "mass-stop", "ondemand-relist-stuck", "overload",
		"runc-dbus-hang", "runc-update-hang", "short-task-pool", "stuck-container-status", "umount-status-lock"}
	// The five incidents of the field report say which one they are.
	incidents := map[string]bool{"imagepull-bbolt": true, "overload": true, "runc-dbus-hang": true, "stuck-container-status": true, "umount-status-lock": true}
	if len(lines) != len(want) {
		t.Fatalf("scenario list printed %d lines, want one per scenario:\n%s", len(lines), out)
	}
	for i, name := range want {
		fields := strings.Fields(lines[i])
		if len(fields) < 3 || fields[0] != name || incidents[name] && !strings.HasPrefix(fields[1], "incident") {
			t.Errorf("line %d = %q, want %s and its summary", i, lines[i], name)
		}
	}
	out, err = run(t, "scenario", "show", "umount-status-lock")
	if err != nil || !strings.Contains(out, `name = "umount-status-lock"`) || !strings.Contains(out, "[[variants]]") {
		t.Errorf("scenario show: %v\n%s", err, out)
	}
	if _, err := run(t, "scenario", "show", "nope"); err == nil || !strings.Contains(err.Error(), "umount-status-lock") {
		t.Errorf("show of an unknown scenario: %v, want an error listing the built-ins", err)
	}
}

// tinyScenario runs for 20 s of scenario time; variant "bad" expects what
// cannot happen, so the run must fail because of it and only it.
const tinyScenario = `
name = "tiny"
summary = "a test"
duration = "20s"
time_scale = 0.01
[[pods]]
  name = "web"
  [[pods.containers]]
    name = "nginx"
[[variants]]
  name = "good"
  [variants.expect]
    pleg_healthy = true
    max_errors = 0
[[variants]]
  name = "bad"
  [variants.expect]
    pleg_healthy = false
`

func TestAB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.toml")
	if err := os.WriteFile(path, []byte(tinyScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "ab", "--scenario", path, "--json")
	if err == nil || !strings.Contains(err.Error(), "expectations not met in bad") || strings.Contains(err.Error(), "good") {
		t.Errorf("ab with a failing variant: error %v, want one naming only bad", err)
	}
	var rep struct {
		Scenario  string  `json:"scenario"`
		TimeScale float64 `json:"time_scale"`
		Variants  []struct {
			Name            string          `json:"name"`
			PLEGHealthy     bool            `json:"pleg_healthy"`
			LastSeen        *float64        `json:"max_pleg_last_seen_seconds"`
			Relist          *float64        `json:"max_relist_seconds"`
			List            *float64        `json:"max_list_containers_seconds"`
			Update          *float64        `json:"max_update_resources_seconds"`
			Unknown         *int            `json:"unknown_states"`
			Errors          json.RawMessage `json:"errors"`
			ExpectationsMet bool            `json:"expectations_met"`
		} `json:"variants"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output is not one JSON object: %v\n%s", err, out)
	}
	if rep.Scenario != "tiny" || rep.TimeScale != 0.01 || len(rep.Variants) != 2 {
		t.Fatalf("report = %+v", rep)
	}
	for _, v := range rep.Variants {
		if v.LastSeen == nil || v.Relist == nil || v.List == nil || v.Update == nil || v.Unknown == nil || v.Errors == nil {
			t.Errorf("variant %s misses a field: %s", v.Name, out)
		}
		if !v.PLEGHealthy || v.ExpectationsMet != (v.Name == "good") {
			t.Errorf("variant %s: healthy %v, expectations met %v", v.Name, v.PLEGHealthy, v.ExpectationsMet)
		}
		// Durations are scenario seconds: with 1 s between relists the
		// longest gap is at least about a second (in wall seconds it
		// would be about 0.01), and a healthy run stays under 3 min.
		if *v.LastSeen < 0.5 || *v.LastSeen > 180 {
			t.Errorf("variant %s: longest without a relist %v s, want scenario seconds in [0.5, 180]", v.Name, *v.LastSeen)
		}
	}

	out, err = run(t, "ab", "--scenario", path, "--variants", "good", "--time-scale", "0.005")
	if err != nil {
		t.Errorf("ab --variants good: %v\n%s", err, out)
	}
	if !strings.Contains(out, "scenario tiny at time scale 0.005") || !strings.Contains(out, "good") || strings.Contains(out, "bad") {
		t.Errorf("table:\n%s", out)
	}
	for _, c := range []struct{ args, want string }{
		{"--variants good,nope", `no variant "nope"`},
		{"--time-scale 0", "--time-scale"},
		{"--log-level loud", "--log-level"},
	} {
		args := append([]string{"ab", "--scenario", path}, strings.Fields(c.args)...)
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ab %s: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
}

// TestPlegWatchNamesTheStuckContainer runs pleg-watch --per-container
// against an in-process server where one container's status does not
// answer, in real time: its ContainerStatus alone blocks (incident 3), or
// its status lock does, which holds ListContainers too (incident 1's
// signature), while pleg-watch runs with kubelet's long call deadline.
func TestPlegWatchNamesTheStuckContainer(t *testing.T) {
	tests := []struct {
		name, point, timeout string
		want                 []string
	}{
		{"container status blocks", faults.PointContainerStatus, "300ms", nil},
		{"status lock blocks, and ListContainers with it", faults.PointStatusLockRead, "1m", []string{
			"per-container: ListContainers gave no list within 150ms",
			"probing the 2 containers of the last list that answered",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, inj, conn := startPlegWatchServer(t)
			// Two pods as kubelet makes them; then stuck/app's status hangs.
			log := logrus.NewEntry(logrus.New())
			log.Logger.SetOutput(io.Discard)
			drv := scenario.NewDriver(conn, clock.Real(), log, scenario.DriverConfig{RuntimeRequestTimeout: time.Minute}, scenario.Hooks{})
			for _, p := range []string{"web", "stuck"} {
				err := drv.CreatePod(context.Background(), scenario.PodSpec{Name: p, Namespace: "default", UID: "uid-" + p,
					Containers: []scenario.ContainerSpec{{Name: "app", Image: "busybox:latest"}}})
				if err != nil {
					t.Fatal(err)
				}
			}
			list, err := runtime.NewRuntimeServiceClient(conn).ListContainers(context.Background(), &runtime.ListContainersRequest{
				Filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": "stuck"}}})
			if err != nil || len(list.Containers) != 1 {
				t.Fatalf("list stuck's container: %v, %v", list, err)
			}
			stuckID := list.Containers[0].Id
			// The fault is armed once pleg-watch runs and has seen the
			// containers, as when an incident starts under a running watch.
			buf := newWatchedBuffer("relist 3: ")
			armed := make(chan error, 1)
			go func() {
				<-buf.seen
				_, err := inj.Add(tt.point, faults.Selector{Pod: "stuck", Container: "app"}, "block", "test")
				armed <- err
			}()
			err = runTo(buf, "pleg-watch", "--endpoint", "unix://"+cfg.GRPC.Address, "--per-container",
				"--per-container-timeout", "150ms", "--timeout", tt.timeout, "--period", "100ms", "--duration", "4s")
			out := buf.String()
			select {
			case err := <-armed:
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("pleg-watch never printed its third relist; output:\n%s", out)
			}
			if err != nil {
				t.Fatalf("pleg-watch: %v\n%s", err, out)
			}
			t.Logf("pleg-watch output:\n%s", out)
			for _, want := range append([]string{
				"per-container: ContainerStatus of " + stuckID[:12] + " (default/stuck/app) hangs",
				"summary: ContainerStatus of " + stuckID[:12] + " (default/stuck/app) hangs",
			}, tt.want...) {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if strings.Contains(out, "(default/web/app) hangs") {
				t.Error("pleg-watch named a container that answers")
			}
		})
	}
	if _, err := run(t, "pleg-watch", "--endpoint", "tcp://host:1"); err == nil || !strings.Contains(err.Error(), "unix://") {
		t.Errorf("a tcp endpoint: %v, want an error asking for unix://", err)
	}
}

// startPlegWatchServer starts an in-process server in real time, with its
// injector; the injector is closed first at the end, so that what its
// faults block lets go before the server closes.
func startPlegWatchServer(t *testing.T) (*configs.Config, *faults.Injector, *grpc.ClientConn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcd-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root, cfg.State, cfg.GRPC.Address = filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "cri.sock")
	clk := clock.Real()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	log := logrus.NewEntry(quiet)
	inj := faults.New(clk, log)
	srv, err := server.New(context.Background(), server.Options{Config: cfg, Clock: clk, Log: log, Faults: inj})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	t.Cleanup(inj.Close)
	go srv.Serve()
	conn, err := grpc.NewClient("unix://"+cfg.GRPC.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cfg, inj, conn
}
