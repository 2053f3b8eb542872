package gogofmt

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The wants are what the gogo-generated String() methods of cri-api v0.25
// (vendored in containerd v1.6.20) print for the same values, derived by
// hand from that generated code.
func TestString(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    proto.Message
		want string
	}{
		{"nil message", (*runtime.LinuxContainerResources)(nil), "nil"},
		{"untyped nil", nil, "nil"},
		{"sandbox metadata", &runtime.PodSandboxMetadata{Name: "job-1", Uid: "u1", Namespace: "default", Attempt: 2},
			"&PodSandboxMetadata{Name:job-1,Uid:u1,Namespace:default,Attempt:2,}"},
		{"container metadata", &runtime.ContainerMetadata{Name: "c1"}, "&ContainerMetadata{Name:c1,Attempt:0,}"},
		{"resources, empty repeated and map", &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, CpusetCpus: "0-1"},
			"&LinuxContainerResources{CpuPeriod:100000,CpuQuota:50000,CpuShares:512,MemoryLimitInBytes:0,OomScoreAdj:0," +
				"CpusetCpus:0-1,CpusetMems:,HugepageLimits:[]*HugepageLimit{},Unified:map[string]string{},MemorySwapLimitInBytes:0,}"},
		{"resources, repeated message and sorted map", &runtime.LinuxContainerResources{
			HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1}, {PageSize: "1GB"}},
			Unified:        map[string]string{"memory.max": "1G", "cpu.max": "max"},
		}, "&LinuxContainerResources{CpuPeriod:0,CpuQuota:0,CpuShares:0,MemoryLimitInBytes:0,OomScoreAdj:0,CpusetCpus:,CpusetMems:," +
			"HugepageLimits:[]*HugepageLimit{&HugepageLimit{PageSize:2MB,Limit:1,},&HugepageLimit{PageSize:1GB,Limit:0,},}," +
			"Unified:map[string]string{cpu.max: max,memory.max: 1G,},MemorySwapLimitInBytes:0,}"},
		{"message field nil and set, enum by name", &runtime.ContainerFilter{Id: "abc", State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}},
			"&ContainerFilter{Id:abc,State:&ContainerStateValue{State:CONTAINER_RUNNING,},PodSandboxId:,LabelSelector:map[string]string{},}"},
		{"nil message field", &runtime.ContainerFilter{}, "&ContainerFilter{Id:,State:nil,PodSandboxId:,LabelSelector:map[string]string{},}"},
		{"repeated scalars as %v", &runtime.ExecSyncRequest{ContainerId: "c", Cmd: []string{"sh", "-c", "true"}, Timeout: 5},
			"&ExecSyncRequest{ContainerId:c,Cmd:[sh -c true],Timeout:5,}"},
		{"bytes as %v", &runtime.ExecSyncResponse{Stdout: []byte("ok"), ExitCode: 1},
			"&ExecSyncResponse{Stdout:[111 107],Stderr:[],ExitCode:1,}"},
		{"bool", &runtime.RuntimeCondition{Type: "Ready", Status: true}, "&RuntimeCondition{Type:Ready,Status:true,Reason:,Message:,}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := String(tc.m); got != tc.want {
				t.Errorf("String:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestSlice(t *testing.T) {
	got := Slice([]*runtime.ContainerMetadata{{Name: "a"}, {Name: "b", Attempt: 1}}).String()
	if want := "[&ContainerMetadata{Name:a,Attempt:0,} &ContainerMetadata{Name:b,Attempt:1,}]"; got != want {
		t.Errorf("Slice: got %s want %s", got, want)
	}
	if got := Slice([]*runtime.Container(nil)).String(); got != "[]" {
		t.Errorf("empty Slice: got %s want []", got)
	}
}

func TestTaskExit(t *testing.T) {
	at := time.Date(2023, 5, 1, 12, 0, 0, 123456789, time.UTC)
	got := TaskExit("abc", "abc", 4242, 137, at)
	want := "&TaskExit{ContainerID:abc,ID:abc,Pid:4242,ExitStatus:137,ExitedAt:2023-05-01 12:00:00.123456789 +0000 UTC,XXX_unrecognized:[],}"
	if got != want {
		t.Errorf("TaskExit:\n got %s\nwant %s", got, want)
	}
}

func TestGoName(t *testing.T) {
	for in, want := range map[protoreflect.Name]string{
		"memory_limit_in_bytes": "MemoryLimitInBytes", "cpuset_cpus": "CpusetCpus", "oom_score_adj": "OomScoreAdj",
		"pod_sandbox_id": "PodSandboxId", "ipv6": "Ipv6", "a1b": "A1B", "_x": "XX", "HugepageLimit": "HugepageLimit",
	} {
		if got := GoName(in); got != want {
			t.Errorf("GoName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every field and type name String prints is the generated Go name: the
// struct of every cri-api message has a field of that name, and every
// message's Go type has the printed name.
func TestNamesMatchGeneratedCode(t *testing.T) {
	fd := (&runtime.Container{}).ProtoReflect().Descriptor().ParentFile()
	var walk func(protoreflect.MessageDescriptors)
	n := 0
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			md := ms.Get(i)
			walk(md.Messages())
			if md.IsMapEntry() {
				continue
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
			if err != nil {
				t.Fatal(err)
			}
			typ := reflect.TypeOf(mt.New().Interface()).Elem()
			if got := goTypeName(md); got != typ.Name() {
				t.Errorf("type name of %s: %s, generated %s", md.FullName(), got, typ.Name())
			}
			for j := 0; j < md.Fields().Len(); j++ {
				f := md.Fields().Get(j)
				if _, ok := typ.FieldByName(GoName(f.Name())); !ok {
					t.Errorf("%s has no Go field %s (from %s)", typ.Name(), GoName(f.Name()), f.Name())
				}
				n++
			}
		}
	}
	walk(fd.Messages())
	if n < 100 {
		t.Fatalf("checked only %d fields", n)
	}
}
