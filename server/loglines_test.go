package server

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// TestContainerdLogLines: the lines around CRI calls and exits read as
// containerd 1.6.20's (instrumented_service.go, events.go), so a user's
// grep for containerd's words finds them. The wanted texts are
// containerd's format strings filled in, with messages in gogo's String()
// form; %ID% and %POD% stand for the container's and the pod's ids.
func TestContainerdLogLines(t *testing.T) {
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	logger.SetLevel(logrus.DebugLevel)
	hook := logtest.NewLocal(logger)
	ts := newLoggedTestServer(t, criScale, nil, logrus.NewEntry(logger))

	podID, pc := ts.runPod("logs")
	id := ts.startContainer(podID, pc, "c1", nil)
	if _, err := ts.rt.UpdateContainerResources(ts.ctx(time.Minute), &runtime.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, Unified: map[string]string{"memory.max": "max"}},
	}); err != nil {
		t.Fatal(err)
	}
	exiting := ts.startContainer(podID, pc, "c2", map[string]string{shim.AnnotationExitAfter: "1s", shim.AnnotationExitCode: "137"})
	ts.waitState(exiting, runtime.ContainerState_CONTAINER_EXITED, time.Minute)
	ts.criStop(id, 0)

	// Failures: the error is the line's error field and the gRPC message.
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"update of a missing container", func() error {
			_, err := ts.rt.UpdateContainerResources(ts.ctx(time.Minute), &runtime.UpdateContainerResourcesRequest{ContainerId: "nosuch", Linux: &runtime.LinuxContainerResources{}})
			return err
		}, codes.NotFound, "failed to find container: not found"},
		{"status of a missing container", func() error {
			_, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: "nosuch"})
			return err
		}, codes.NotFound, `an error occurred when try to find container "nosuch": not found`},
		{"status of a missing sandbox", func() error {
			_, err := ts.rt.PodSandboxStatus(ts.ctx(time.Minute), &runtime.PodSandboxStatusRequest{PodSandboxId: "nosuch"})
			return err
		}, codes.NotFound, `an error occurred when try to find sandbox: not found`},
		{"start of a missing container", func() error {
			_, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: "nosuch"})
			return err
		}, codes.NotFound, `an error occurred when try to find container "nosuch": not found`},
		{"unknown runtime handler", func() error {
			_, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: podConfig("kata"), RuntimeHandler: "kata"})
			return err
		}, codes.InvalidArgument, `failed to get sandbox runtime: no runtime for "kata" is configured`},
	} {
		err := tc.call()
		if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%s: %v %q, want %v %q", tc.name, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}

	// The TaskExit event line is written when the event loop handles an
	// exit (a retry from the backoff queue, in the field).
	at := time.Date(2023, 5, 1, 12, 0, 0, 5, time.UTC)
	if err := ts.srv.cri.eventMonitor.handleEvent(&eventstypes.TaskExit{ContainerID: "gone", ID: "gone", Pid: 42, ExitStatus: 137, ExitedAt: timestamppb.New(at)}); err != nil {
		t.Fatal(err)
	}

	type line struct {
		level logrus.Level
		text  string // exact, or a regexp if it starts with ^
		err   string // the error field, if any
	}
	meta := "&PodSandboxMetadata{Name:logs,Uid:logs-uid,Namespace:default,Attempt:1,}"
	kataMeta := "&PodSandboxMetadata{Name:kata,Uid:kata-uid,Namespace:default,Attempt:1,}"
	want := []line{
		{logrus.InfoLevel, "RunPodSandbox for " + meta, ""},
		{logrus.InfoLevel, fmt.Sprintf("RunPodSandbox for %s returns sandbox id %q", meta, podID), ""},
		{logrus.InfoLevel, fmt.Sprintf(`CreateContainer within sandbox %q for container &ContainerMetadata{Name:c1,Attempt:0,}`, podID), ""},
		{logrus.InfoLevel, fmt.Sprintf(`CreateContainer within sandbox %q for &ContainerMetadata{Name:c1,Attempt:0,} returns container id %q`, podID, id), ""},
		{logrus.InfoLevel, fmt.Sprintf(`StartContainer for %q`, id), ""},
		{logrus.InfoLevel, fmt.Sprintf(`StartContainer for %q returns successfully`, id), ""},
		{logrus.InfoLevel, fmt.Sprintf(`UpdateContainerResources for %q with Linux: &LinuxContainerResources{CpuPeriod:100000,CpuQuota:50000,CpuShares:0,`+
			`MemoryLimitInBytes:0,OomScoreAdj:0,CpusetCpus:,CpusetMems:,HugepageLimits:[]*HugepageLimit{},Unified:map[string]string{memory.max: max,},`+
			`MemorySwapLimitInBytes:0,} / Windows: nil`, id), ""},
		{logrus.InfoLevel, fmt.Sprintf(`UpdateContainerResources for %q returns successfully`, id), ""},
		{logrus.DebugLevel, fmt.Sprintf(`^received exit event &TaskExit\{ContainerID:%[1]s,ID:%[1]s,Pid:\d+,ExitStatus:137,ExitedAt:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC,XXX_unrecognized:\[\],\}$`, exiting), ""},
		{logrus.InfoLevel, fmt.Sprintf(`StopContainer for %q with timeout 0 (s)`, id), ""},
		{logrus.InfoLevel, fmt.Sprintf(`Kill container %q`, id), ""},
		{logrus.InfoLevel, fmt.Sprintf(`StopContainer for %q returns successfully`, id), ""},
		{logrus.ErrorLevel, `UpdateContainerResources for "nosuch" failed`, "failed to find container: not found"},
		{logrus.ErrorLevel, `ContainerStatus for "nosuch" failed`, `an error occurred when try to find container "nosuch": not found`},
		{logrus.ErrorLevel, `PodSandboxStatus for "nosuch" failed`, `an error occurred when try to find sandbox: not found`},
		{logrus.ErrorLevel, "RunPodSandbox for " + kataMeta + " failed, error", `failed to get sandbox runtime: no runtime for "kata" is configured`},
		{logrus.InfoLevel, "TaskExit event &TaskExit{ContainerID:gone,ID:gone,Pid:42,ExitStatus:137,ExitedAt:2023-05-01 12:00:00.000000005 +0000 UTC,XXX_unrecognized:[],}", ""},
	}
	entries := hook.AllEntries()
	for _, w := range want {
		found := false
		for _, e := range entries {
			if e.Level != w.level {
				continue
			}
			ok := e.Message == w.text
			if strings.HasPrefix(w.text, "^") {
				ok = regexp.MustCompile(w.text).MatchString(e.Message)
			}
			if !ok {
				continue
			}
			if w.err != "" {
				if got, _ := e.Data[logrus.ErrorKey].(error); got == nil || got.Error() != w.err {
					t.Errorf("%q: error field %v, want %q", w.text, e.Data[logrus.ErrorKey], w.err)
				}
			}
			found = true
			break
		}
		if !found {
			t.Errorf("no %s line %q", w.level, w.text)
		}
	}
	// Nothing is logged in protobuf's text form any more.
	for _, e := range entries {
		if strings.Contains(e.Message, "container_id:") || strings.Contains(e.Message, "linux:{") {
			t.Errorf("line in protobuf text form: %s", e.Message)
		}
	}
	if t.Failed() {
		for _, e := range entries {
			t.Logf("%s %s %v", e.Level, e.Message, e.Data[logrus.ErrorKey])
		}
	}
}
