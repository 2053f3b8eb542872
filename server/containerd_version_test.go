package server

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

func versionServer(t *testing.T, version string) *testServer {
	t.Helper()
	return newTestServer(t, 0.01, func(c *configs.Config) { c.Plugins.Fake.ContainerdVersion = version })
}

var allVersions = []string{configs.ContainerdV16, configs.ContainerdV17, configs.ContainerdV2}

// eachRelease runs f as a subtest per containerd_version, on a fresh
// server with that setting.
func eachRelease(t *testing.T, f func(t *testing.T, v string, v2 bool, ts *testServer)) {
	for _, v := range allVersions {
		t.Run(v, func(t *testing.T) { f(t, v, v == configs.ContainerdV2, versionServer(t, v)) })
	}
}

// TestVersionStatusPerRelease: Version names the release modelled (1.6
// keeps the plain build version), and 2.x's Status carries the runtime
// features and the deprecation condition.
func TestVersionStatusPerRelease(t *testing.T) {
	eachRelease(t, func(t *testing.T, v string, v2 bool, ts *testServer) {
		ver, err := ts.rt.Version(ts.ctx(time.Minute), &runtime.VersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		wantVer := map[string]string{"1.6": Version, "1.7": Version + "+containerd.v1.7.30", "2.x": Version + "+containerd.v2.2.7"}[v]
		if ver.RuntimeVersion != wantVer || ver.RuntimeName != "fakecontainerd" {
			t.Errorf("Version = %s %s, want fakecontainerd %s", ver.RuntimeName, ver.RuntimeVersion, wantVer)
		}
		st, err := ts.rt.Status(ts.ctx(time.Minute), &runtime.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var dep *runtime.RuntimeCondition
		for _, c := range st.Status.Conditions {
			if c.Type == "ContainerdHasNoDeprecationWarnings" {
				dep = c
			}
		}
		if (dep != nil) != v2 {
			t.Errorf("deprecation condition = %v, want it only for 2.x", dep)
		}
		if v2 && dep.Status != hostCgroupV2() {
			t.Errorf("deprecation condition status %v on a host with cgroup v2 = %v", dep.Status, hostCgroupV2())
		}
		if got := st.GetFeatures().GetSupplementalGroupsPolicy(); got != v2 {
			t.Errorf("features.supplemental_groups_policy = %v, want %v", got, v2)
		}
		_, err = ts.rt.UpdatePodSandboxResources(ts.ctx(time.Minute), &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: "x"})
		wantMsg := "method UpdatePodSandboxResources not implemented"
		if v2 {
			wantMsg = "not implemented"
		}
		if status.Code(err) != codes.Unimplemented || status.Convert(err).Message() != wantMsg {
			t.Errorf("UpdatePodSandboxResources: %v, want Unimplemented %q", err, wantMsg)
		}
	})
}

func TestDeprecationCondition(t *testing.T) {
	c, err := containerdHasNoDeprecationWarnings(false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status || c.Reason != "ContainerdHasDeprecationWarnings" || !strings.Contains(c.Message, `"io.containerd.deprecation/cgroup-v1"`) {
		t.Errorf("cgroup v1 host: %+v", c)
	}
	if c, _ := containerdHasNoDeprecationWarnings(true); !c.Status || c.Reason != "" {
		t.Errorf("cgroup v2 host: %+v", c)
	}
}

// TestCreateErrorsPerRelease: the codes and texts of a create that 2.x
// answers differently.
func TestCreateErrorsPerRelease(t *testing.T) {
	eachRelease(t, func(t *testing.T, v string, v2 bool, ts *testServer) {
		podID, pc := ts.runPod("p")
		cfg := containerConfig("c", nil)
		cfg.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			RunAsUser: &runtime.Int64Value{Value: 1000}, RunAsGroup: &runtime.Int64Value{Value: 3000}, SupplementalGroups: []int64{4000, 3000},
		}}
		resp, err := ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pc})
		if err != nil {
			t.Fatal(err)
		}
		st := ts.criStatus(resp.ContainerId)
		if v2 {
			u := st.GetUser().GetLinux()
			if u.GetUid() != 1000 || u.GetGid() != 3000 || len(u.GetSupplementalGroups()) != 2 || u.SupplementalGroups[0] != 3000 || u.SupplementalGroups[1] != 4000 {
				t.Errorf("2.x user = %+v, want uid 1000 gid 3000 groups [3000 4000]", u)
			}
			if st.ImageId != "" {
				t.Errorf("2.x image_id = %q, want empty as 2.2.7", st.ImageId)
			}
		} else if st.User != nil || st.ImageId == "" {
			t.Errorf("%s: user %v image_id %q, want no user and the image id", v, st.User, st.ImageId)
		}
		list, err := ts.rt.ListContainers(ts.ctx(time.Minute), &runtime.ListContainersRequest{})
		if err != nil || len(list.Containers) != 1 {
			t.Fatalf("list: %v %v", list, err)
		}
		if (list.Containers[0].ImageId == "") != v2 {
			t.Errorf("list image_id = %q (2.x leaves it empty)", list.Containers[0].ImageId)
		}

		_, err = ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pc})
		if want := "check if another CreateContainer request is in progress"; strings.Contains(status.Convert(err).Message(), want) != v2 {
			t.Errorf("name conflict: %v (2.x says %q)", err, want)
		}
		bad := containerConfig("d", nil)
		bad.Image = &runtime.ImageSpec{Image: "nosuch:1.0"}
		_, err = ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: bad, SandboxConfig: pc})
		if want := "failed to check if this is a checkpoint image: "; strings.HasPrefix(status.Convert(err).Message(), want) != v2 {
			t.Errorf("missing image: %v (2.x starts %q)", err, want)
		}

		if _, err := ts.rt.StopPodSandbox(ts.ctx(time.Minute), &runtime.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatal(err)
		}
		_, err = ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: containerConfig("late", nil), SandboxConfig: pc})
		wantCode, wantText := codes.NotFound, "failed to get sandbox container task: no running task found"
		if v2 {
			wantCode, wantText = codes.Unknown, `sandbox container "`+podID+`" is not running`
		}
		if status.Code(err) != wantCode || !strings.Contains(status.Convert(err).Message(), wantText) {
			t.Errorf("create in a stopped sandbox: %v, want %v %q", err, wantCode, wantText)
		}
		_, err = ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: podConfig("h"), RuntimeHandler: "nosuch"})
		if want := "unable to get OCI runtime for sandbox "; strings.HasPrefix(status.Convert(err).Message(), want) != v2 {
			t.Errorf("bad handler: %v (2.x starts %q)", err, want)
		}
		_, err = ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{})
		if want := "prefix can't be empty"; strings.HasSuffix(status.Convert(err).Message(), want) != v2 {
			t.Errorf("empty id: %v (2.x ends %q)", err, want)
		}
	})
}

// TestUpdateTakesStatusLockPerRelease is incident 1's update behind a shim
// Delete stuck in its unmount. 1.6 and 1.7 take the container's status
// lock as the update begins; 2.x first has NRI look the task up, whose
// State waits out the 2 s cap behind the shim's process lock, so the lock
// comes at least 2 s later and the readers' stall is that much shorter.
// The shim's Unknown error drops ": unknown" in 2.x (errgrpc.ToNative).
func TestUpdateTakesStatusLockPerRelease(t *testing.T) {
	eachRelease(t, func(t *testing.T, v string, v2 bool, ts *testServer) {
		podID, pc := ts.runPod("job")
		t0 := ts.clock.Now()
		id := ts.startContainer(podID, pc, "loop", map[string]string{
			shim.AnnotationExitAfter: "10s", shim.AnnotationExitCode: "137",
			shim.AnnotationDirtyBytes: "300MiB", shim.AnnotationDiskThroughput: "10MiB",
		})
		// The exit at 10 s starts a 30 s unmount under the shim's
		// process lock.
		_ = ts.clock.Sleep(context.Background(), 15*time.Second-ts.clock.Since(t0))
		var wg sync.WaitGroup
		var err error
		begun := ts.clock.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err = ts.rt.UpdateContainerResources(ts.ctx(2*time.Minute), &runtime.UpdateContainerResourcesRequest{
				ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 512},
			})
		}()
		h, ok := ts.findHolder(time.Minute, func(lock string, h UseEntry) bool {
			return h.Op == "UpdateContainerResources" && strings.Contains(lock, string(lockStatus))
		})
		if !ok {
			t.Fatal("the update never held the status lock")
		}
		taken := ts.clock.Since(begun) - h.For
		wg.Wait()
		if v2 && taken < 2*time.Second {
			t.Errorf("2.x took the status lock %v after the update began, want >= 2s (NRI's task lookup first)", taken)
		}
		if !v2 && taken >= 2*time.Second {
			t.Errorf("%s took the status lock %v after the update began, want at once", v, taken)
		}
		want := "failed to update resources: failed to update resources: cannot update a deleted process: unknown"
		if v2 {
			want = strings.TrimSuffix(want, ": unknown")
		}
		if msg := status.Convert(err).Message(); msg != want {
			t.Errorf("update error %q, want %q", msg, want)
		}
	})
}

// TestLogLinesPerRelease: the update's and the exit's lines in each
// release's form: 1.6 prints messages in gogo's form and logs the error
// as the method returned it; 2.x prints protobuf's text form, logs the
// gRPC status and names the exit's kind at info; 1.7 logs the exit at
// info with its event in protobuf's text form.
func TestLogLinesPerRelease(t *testing.T) {
	for _, tc := range []struct {
		version         string
		update, exit    string
		exitLevel       logrus.Level
		failedErrPrefix string
	}{
		{configs.ContainerdV16, `UpdateContainerResources for "%ID%" with Linux: &LinuxContainerResources{CpuPeriod:0,CpuQuota:0,CpuShares:512,`, "received exit event &TaskExit{", logrus.DebugLevel, "failed to find container"},
		{configs.ContainerdV17, `UpdateContainerResources for "%ID%" with Linux: &LinuxContainerResources{CpuPeriod:0,CpuQuota:0,CpuShares:512,`, `received exit event container_id:"`, logrus.InfoLevel, "failed to find container"},
		{configs.ContainerdV2, `UpdateContainerResources for "%ID%" with Linux: cpu_shares:512 / Windows: <nil>`, `received container exit event container_id:"`, logrus.InfoLevel, "rpc error: code = NotFound desc = failed to find container"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			logger := logrus.New()
			logger.SetOutput(io.Discard)
			logger.SetLevel(logrus.DebugLevel)
			hook := logtest.NewLocal(logger)
			ts := newLoggedTestServer(t, 0.01, func(c *configs.Config) { c.Plugins.Fake.ContainerdVersion = tc.version }, logrus.NewEntry(logger))
			podID, pc := ts.runPod("logs")
			id := ts.startContainer(podID, pc, "c1", map[string]string{shim.AnnotationExitAfter: "5s", shim.AnnotationExitCode: "137"})
			if _, err := ts.rt.UpdateContainerResources(ts.ctx(time.Minute), &runtime.UpdateContainerResourcesRequest{
				ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 512},
			}); err != nil {
				t.Fatal(err)
			}
			_, _ = ts.rt.UpdateContainerResources(ts.ctx(time.Minute), &runtime.UpdateContainerResourcesRequest{ContainerId: "nosuch", Linux: &runtime.LinuxContainerResources{}})
			ts.waitState(id, runtime.ContainerState_CONTAINER_EXITED, time.Minute)
			update := strings.ReplaceAll(tc.update, "%ID%", id)
			var sawUpdate, sawExit, sawFailed bool
			for _, e := range hook.AllEntries() {
				switch {
				case e.Level == logrus.InfoLevel && strings.HasPrefix(e.Message, update):
					sawUpdate = true
				case e.Level == tc.exitLevel && strings.HasPrefix(e.Message, tc.exit) && strings.Contains(e.Message, id):
					sawExit = true
				case e.Level == logrus.ErrorLevel && e.Message == `UpdateContainerResources for "nosuch" failed`:
					err, _ := e.Data[logrus.ErrorKey].(error)
					sawFailed = err != nil && strings.HasPrefix(err.Error(), tc.failedErrPrefix)
					if !sawFailed {
						t.Errorf("failed update's error field %v, want it to start %q", err, tc.failedErrPrefix)
					}
				}
			}
			if !sawUpdate || !sawExit || !sawFailed {
				t.Errorf("update line %q seen %v; %s exit line %q seen %v; failed line seen %v", update, sawUpdate, tc.exitLevel, tc.exit, sawExit, sawFailed)
			}
		})
	}
}

// TestExitRetryPerRelease: behind a shim Delete stuck in its unmount, the
// exit's retries load the task while its State times out. 1.7.30 and 2.x
// then hold a task with pid 0, skip WithProcessKill (#10441) and reach the
// shim's Delete again, which times out at the event deadline ("failed to
// delete task" each retry); 1.6 waits in the kill, behind the same lock,
// and never gets that far until the unmount is over.
func TestExitRetryPerRelease(t *testing.T) {
	for _, v := range allVersions {
		t.Run(v, func(t *testing.T) {
			logger := logrus.New()
			logger.SetOutput(io.Discard)
			logger.SetLevel(logrus.DebugLevel)
			hook := logtest.NewLocal(logger)
			ts := newLoggedTestServer(t, 0.01, func(c *configs.Config) { c.Plugins.Fake.ContainerdVersion = v }, logrus.NewEntry(logger))
			podID, pc := ts.runPod("job")
			// Exits at 5 s; a 60 s unmount follows.
			id := ts.startContainer(podID, pc, "loop", map[string]string{
				shim.AnnotationExitAfter: "5s", shim.AnnotationExitCode: "137",
				shim.AnnotationDirtyBytes: "600MiB", shim.AnnotationDiskThroughput: "10MiB",
			})
			ts.waitState(id, runtime.ContainerState_CONTAINER_EXITED, 10*time.Minute)
			timedOut := 0
			for _, e := range hook.AllEntries() {
				if err, _ := e.Data[logrus.ErrorKey].(error); e.Message == "failed to delete task" && err != nil && strings.Contains(err.Error(), "deadline exceeded") {
					timedOut++
				}
			}
			if v == configs.ContainerdV16 && timedOut != 1 {
				t.Errorf("1.6: %d shim Deletes timed out, want 1 (the retries wait in the kill)", timedOut)
			}
			if v != configs.ContainerdV16 && timedOut < 2 {
				t.Errorf("%s: %d shim Deletes timed out, want the retries' too (pid 0, no kill)", v, timedOut)
			}
		})
	}
}
