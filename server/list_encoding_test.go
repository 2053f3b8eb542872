package server

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// TestListContainersEncoding: over gRPC, ListContainers is written from
// each container's cached encoding (listContainersEncoded); what the client
// decodes must be exactly the plain handler's response, in every state and
// for every filter, before and after the status changes.
func TestListContainersEncoding(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.runPod("enc")
	created := ts.createContainer(podID, pc, "created", map[string]string{"note": "ünïcode ✓"})
	running := ts.startContainer(podID, pc, "running", nil)
	exited := ts.startContainer(podID, pc, "exited", map[string]string{shim.AnnotationExitAfter: "1ms", shim.AnnotationExitCode: "3"})
	ts.waitState(exited, runtime.ContainerState_CONTAINER_EXITED, time.Minute)

	compare := func(stage string) {
		t.Helper()
		for _, f := range []*runtime.ContainerFilter{
			nil, {}, {Id: running[:10]}, {PodSandboxId: podID},
			{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_EXITED}},
			{LabelSelector: map[string]string{"io.kubernetes.container.name": "created"}},
			{Id: "nomatch"},
		} {
			req := &runtime.ListContainersRequest{Filter: f}
			plain, err := ts.srv.cri.ListContainers(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			wire, err := ts.rt.ListContainers(ts.ctx(time.Minute), req)
			if err != nil {
				t.Fatal(err)
			}
			// The encoded form itself: nothing but bytes until decoded.
			enc, err := ts.srv.cri.ListContainers(withEncodedList(context.Background()), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(enc.Containers) != 0 || (len(plain.Containers) > 0 && len(enc.ProtoReflect().GetUnknown()) == 0) {
				t.Fatalf("encoded response: %d containers and %d bytes", len(enc.Containers), len(enc.ProtoReflect().GetUnknown()))
			}
			data, err := proto.Marshal(enc)
			if err != nil {
				t.Fatal(err)
			}
			decoded := &runtime.ListContainersResponse{}
			if err := proto.Unmarshal(data, decoded); err != nil {
				t.Fatal(err)
			}
			byID := func(a, b *runtime.Container) int { return strings.Compare(a.Id, b.Id) }
			slices.SortFunc(decoded.Containers, byID)
			slices.SortFunc(plain.Containers, byID)
			slices.SortFunc(wire.Containers, byID)
			if !proto.Equal(plain, wire) {
				t.Errorf("%s, filter %v: over gRPC\n%v\nplain\n%v", stage, f, wire, plain)
			}
			if !proto.Equal(plain, decoded) {
				t.Errorf("%s, filter %v: encoded\n%v\nplain\n%v", stage, f, decoded, plain)
			}
		}
	}
	compare("created, running, exited")
	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: created}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rt.StopContainer(ts.ctx(time.Minute), &runtime.StopContainerRequest{ContainerId: running, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	compare("after start and stop")
	if _, err := ts.rt.RemoveContainer(ts.ctx(time.Minute), &runtime.RemoveContainerRequest{ContainerId: exited}); err != nil {
		t.Fatal(err)
	}
	compare("after remove")
}
