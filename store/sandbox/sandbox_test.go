package sandbox

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/store"
	"github.com/fakecontainerd/fakecontainerd/store/truncindex"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMetadataRoundTrip(t *testing.T) {
	md := Metadata{
		ID:   "s1",
		Name: "p_ns_uid_0",
		Config: &runtime.PodSandboxConfig{
			Metadata:     &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "uid"},
			Hostname:     "p",
			LogDirectory: "/var/log/pods/ns_p_uid",
			Linux: &runtime.LinuxPodSandboxConfig{
				Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 30},
			},
		},
		NetNSPath:      "/var/run/netns/cni-1",
		IP:             "10.0.0.2",
		AdditionalIPs:  []string{"fd00::2"},
		RuntimeHandler: "runc",
	}
	data, err := json.Marshal(&md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), `{"Version":"v1","Metadata":{`) {
		t.Fatalf("encoding %s: want a versioned envelope", data)
	}
	var got Metadata
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Config, md.Config) {
		t.Fatalf("Config = %v; want %v", got.Config, md.Config)
	}
	if got.ID != md.ID || got.Name != md.Name || got.NetNSPath != md.NetNSPath || got.IP != md.IP ||
		!slices.Equal(got.AdditionalIPs, md.AdditionalIPs) || got.RuntimeHandler != md.RuntimeHandler {
		t.Fatalf("got %+v; want %+v", got, md)
	}
	if err := json.Unmarshal([]byte(`{"Version":"v0","Metadata":{}}`), &got); err == nil ||
		!strings.Contains(err.Error(), "unsupported metadata version") {
		t.Fatalf("Unmarshal v0 = %v; want unsupported version", err)
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		s    State
		want string
	}{
		{StateUnknown, "SANDBOX_UNKNOWN"},
		{StateReady, "SANDBOX_READY"},
		{StateNotReady, "SANDBOX_NOTREADY"},
		{State(42), "SANDBOX_INVALID"},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("State(%d).String() = %q; want %q", tc.s, got, tc.want)
		}
	}
	var zero Status
	if zero.State != StateUnknown {
		t.Fatal("zero Status is not StateUnknown")
	}
}

func TestStatusUpdate(t *testing.T) {
	now := time.Unix(100, 0)
	s := StoreStatus(Status{Pid: 1, CreatedAt: now, State: StateReady})
	if err := s.Update(func(st Status) (Status, error) {
		st.State, st.ExitedAt, st.ExitStatus = StateNotReady, now.Add(time.Second), 137
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := s.Get(); got.State != StateNotReady || got.ExitStatus != 137 || !got.ExitedAt.Equal(now.Add(time.Second)) {
		t.Fatalf("Get after Update = %+v", got)
	}
	boom := errors.New("boom")
	if err := s.Update(func(st Status) (Status, error) { st.Pid = 9; return st, boom }); !errors.Is(err, boom) {
		t.Fatalf("Update = %v; want fn error", err)
	}
	if s.Get().Pid != 1 {
		t.Fatal("failed Update changed the status")
	}
}

func TestNewSandboxStopCh(t *testing.T) {
	ready := NewSandbox(Metadata{ID: "a"}, Status{State: StateReady})
	notReady := NewSandbox(Metadata{ID: "b"}, Status{State: StateNotReady})
	select {
	case <-ready.Stopped():
		t.Fatal("ready sandbox's StopCh is closed")
	default:
	}
	select {
	case <-notReady.Stopped():
	default:
		t.Fatal("NotReady sandbox's StopCh is open")
	}
}

func TestStore(t *testing.T) {
	s := NewStore()
	for _, id := range []string{"aa11", "aa22", "bb33"} {
		if err := s.Add(NewSandbox(Metadata{ID: id}, Status{State: StateReady})); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(NewSandbox(Metadata{ID: "aa11"}, Status{})); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("Add duplicate = %v; want ErrAlreadyExists", err)
	}
	tests := []struct {
		name     string
		id       string
		want     string
		notFound bool
		amb      bool
	}{
		{name: "exact", id: "aa22", want: "aa22"},
		{name: "prefix", id: "b", want: "bb33"},
		{name: "ambiguous", id: "aa", amb: true},
		{name: "missing", id: "cc", notFound: true},
		{name: "empty", id: "", notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Get(tc.id)
			switch {
			case tc.amb:
				if !errors.As(err, new(truncindex.ErrAmbiguousPrefix)) {
					t.Fatalf("Get(%q) = %v; want ErrAmbiguousPrefix", tc.id, err)
				}
			case tc.notFound:
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get(%q) = %v; want ErrNotFound", tc.id, err)
				}
			default:
				if err != nil || got.ID != tc.want {
					t.Fatalf("Get(%q) = %q, %v; want %q", tc.id, got.ID, err, tc.want)
				}
			}
		})
	}
	if n := len(s.List()); n != 3 {
		t.Fatalf("List has %d sandboxes; want 3", n)
	}
	s.Delete("aa11")
	if _, err := s.Get("aa11"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v; want ErrNotFound", err)
	}
	if got, err := s.Get("aa"); err != nil || got.ID != "aa22" {
		t.Fatalf("Get(aa) after Delete = %q, %v; want aa22", got.ID, err)
	}
	if n := len(s.List()); n != 2 {
		t.Fatalf("List has %d sandboxes after Delete; want 2", n)
	}
}
