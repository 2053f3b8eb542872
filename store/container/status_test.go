package container

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestState(t *testing.T) {
	tests := []struct {
		name   string
		status Status
		want   runtime.ContainerState
	}{
		{name: "zero", status: Status{}, want: runtime.ContainerState_CONTAINER_UNKNOWN},
		{name: "created", status: Status{CreatedAt: 1}, want: runtime.ContainerState_CONTAINER_CREATED},
		{name: "running", status: Status{CreatedAt: 1, StartedAt: 2}, want: runtime.ContainerState_CONTAINER_RUNNING},
		{name: "exited", status: Status{CreatedAt: 1, StartedAt: 2, FinishedAt: 3}, want: runtime.ContainerState_CONTAINER_EXITED},
		{name: "exited without start", status: Status{CreatedAt: 1, FinishedAt: 3}, want: runtime.ContainerState_CONTAINER_EXITED},
		{name: "unknown wins", status: Status{CreatedAt: 1, StartedAt: 2, FinishedAt: 3, Unknown: true}, want: runtime.ContainerState_CONTAINER_UNKNOWN},
		{name: "starting is still created", status: Status{CreatedAt: 1, Starting: true}, want: runtime.ContainerState_CONTAINER_CREATED},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.status.State(); got != tc.want {
				t.Fatalf("State() = %v; want %v", got, tc.want)
			}
		})
	}
}

func testResources(mem int64) *runtime.ContainerResources {
	return &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{
		MemoryLimitInBytes: mem,
		CpuQuota:           50000,
		CpuPeriod:          100000,
		HugepageLimits:     []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
	}}
}

func newTestStorage(t *testing.T, st Status, opts ...StatusOpt) (StatusStorage, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "containers", "c1")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := StoreStatus(root, "c1", st, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

// statusEqual compares two statuses, Resources by proto.Equal.
func statusEqual(a, b Status) bool {
	if !proto.Equal(a.Resources, b.Resources) {
		return false
	}
	a.Resources, b.Resources = nil, nil
	return a == b
}

func TestStoreAndLoad(t *testing.T) {
	want := Status{Pid: 42, CreatedAt: 1, StartedAt: 2, ExitCode: 0, Reason: "r", Message: "m",
		Starting: true, Resources: testResources(100001)}
	_, root := newTestStorage(t, want)
	got, err := LoadStatus(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	want.Starting = false // in-memory flag, not checkpointed
	if !statusEqual(got, want) {
		t.Fatalf("LoadStatus = %+v; want %+v", got, want)
	}
	data, err := os.ReadFile(filepath.Join(root, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{`"Version":"v1"`, `"Pid":42`, `"memory_limit_in_bytes"`} {
		if !strings.Contains(string(data), frag) {
			t.Errorf("checkpoint %s lacks %s", data, frag)
		}
	}
	if strings.Contains(string(data), "Starting") {
		t.Errorf("checkpoint %s holds the in-memory Starting flag", data)
	}
}

// TestLoadContainerdCheckpoint reads a file in the shape containerd writes
// (encoding/json of the proto struct: int64 as numbers).
func TestLoadContainerdCheckpoint(t *testing.T) {
	root := t.TempDir()
	data := `{"Version":"v1","Pid":7,"CreatedAt":1,"StartedAt":2,"FinishedAt":0,"ExitCode":0,"Reason":"","Message":"",` +
		`"Resources":{"linux":{"cpu_period":100000,"memory_limit_in_bytes":100001}}}`
	if err := os.WriteFile(filepath.Join(root, "status"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadStatus(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Pid != 7 || got.Resources.GetLinux().GetMemoryLimitInBytes() != 100001 || got.Resources.GetLinux().GetCpuPeriod() != 100000 {
		t.Fatalf("LoadStatus = %+v", got)
	}
}

func TestLoadStatusErrors(t *testing.T) {
	tests := []struct {
		name    string
		content *string
		want    string
	}{
		{name: "missing", want: "failed to read status from"},
		{name: "garbage", content: ptr("{"), want: "failed to decode status"},
		{name: "version", content: ptr(`{"Version":"v9","Pid":1}`), want: "unsupported version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.content != nil {
				if err := os.WriteFile(filepath.Join(root, "status"), []byte(*tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadStatus(root, "c1")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadStatus = %v; want error containing %q", err, tc.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestGetReturnsDeepCopy(t *testing.T) {
	s, _ := newTestStorage(t, Status{CreatedAt: 1, Resources: testResources(100)})
	got := s.Get()
	got.Resources.Linux.MemoryLimitInBytes = 999
	got.Resources.Linux.HugepageLimits[0].Limit = 999
	got.Pid = 999
	again := s.Get()
	if again.Resources.GetLinux().GetMemoryLimitInBytes() != 100 ||
		again.Resources.GetLinux().GetHugepageLimits()[0].GetLimit() != 1<<21 || again.Pid != 0 {
		t.Fatalf("mutating a Get result changed the storage: %+v", again)
	}
}

func TestUpdateSyncPersists(t *testing.T) {
	s, root := newTestStorage(t, Status{CreatedAt: 1, StartedAt: 2})
	err := s.UpdateSync(func(st Status) (Status, error) {
		st.Resources = testResources(2 << 30)
		st.FinishedAt = 3
		st.ExitCode = 137
		return st, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadStatus(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !statusEqual(loaded, s.Get()) || loaded.ExitCode != 137 || loaded.Resources.GetLinux().GetMemoryLimitInBytes() != 2<<30 {
		t.Fatalf("on disk %+v, in memory %+v", loaded, s.Get())
	}
	// Only the checkpoint is left: the temp file was renamed over it.
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "status" {
		t.Fatalf("root holds %v; want only status", entries)
	}
}

func TestUpdateSyncRollsBack(t *testing.T) {
	orig := Status{CreatedAt: 1, StartedAt: 2, Resources: testResources(100)}
	s, root := newTestStorage(t, orig)
	before, err := os.ReadFile(filepath.Join(root, "status"))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = s.UpdateSync(func(st Status) (Status, error) {
		// Mutating the argument in place must not leak into the storage.
		st.Resources.Linux.MemoryLimitInBytes = 1
		st.FinishedAt = 3
		return st, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateSync = %v; want the fn error", err)
	}
	after, err := os.ReadFile(filepath.Join(root, "status"))
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Fatalf("checkpoint changed on a failed update: %s -> %s", before, after)
	}
	if !statusEqual(s.Get(), orig) {
		t.Fatalf("memory changed on a failed update: %+v", s.Get())
	}
}

func TestUpdateSyncCheckpointFailureKeepsMemory(t *testing.T) {
	s, root := newTestStorage(t, Status{CreatedAt: 1})
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	err := s.UpdateSync(func(st Status) (Status, error) { st.StartedAt = 2; return st, nil })
	if err == nil || !strings.Contains(err.Error(), "failed to checkpoint status to") {
		t.Fatalf("UpdateSync with no root = %v; want checkpoint error", err)
	}
	if s.Get().StartedAt != 0 {
		t.Fatal("memory updated although the checkpoint failed")
	}
}

func TestUpdateIsMemoryOnly(t *testing.T) {
	s, root := newTestStorage(t, Status{CreatedAt: 1, StartedAt: 2})
	if err := s.Update(func(st Status) (Status, error) { st.Removing = true; st.Pid = 9; return st, nil }); err != nil {
		t.Fatal(err)
	}
	if got := s.Get(); !got.Removing || got.Pid != 9 {
		t.Fatalf("Get after Update = %+v", got)
	}
	loaded, err := LoadStatus(root, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Pid != 0 {
		t.Fatalf("Update wrote to disk: %+v", loaded)
	}
	boom := errors.New("boom")
	if err := s.Update(func(st Status) (Status, error) { st.Pid = 10; return st, boom }); !errors.Is(err, boom) {
		t.Fatalf("Update = %v; want fn error", err)
	}
	if s.Get().Pid != 9 {
		t.Fatal("failed Update changed memory")
	}
}

// TestUpdateSyncHoldsLockAcrossFn is the property the incidents hinge on: a
// reader (ListContainers, ContainerStatus) waits for the whole UpdateSync.
func TestUpdateSyncHoldsLockAcrossFn(t *testing.T) {
	s, _ := newTestStorage(t, Status{CreatedAt: 1, StartedAt: 2})
	entered, release := make(chan struct{}), make(chan struct{})
	updateDone := make(chan error, 1)
	go func() {
		updateDone <- s.UpdateSync(func(st Status) (Status, error) {
			close(entered)
			<-release
			st.Pid = 77
			return st, nil
		})
	}()
	<-entered
	got := make(chan Status, 1)
	go func() { got <- s.Get() }()
	select {
	case st := <-got:
		t.Fatalf("Get returned %+v while UpdateSync's fn was running", st)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case st := <-got:
		if st.Pid != 77 {
			t.Fatalf("Get after UpdateSync = %+v; want Pid 77", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Get did not return after UpdateSync finished")
	}
	if err := <-updateDone; err != nil {
		t.Fatal(err)
	}
}

type event struct {
	id    string
	write bool
	what  string
}

type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) Requesting(id string, write bool) { r.add(event{id, write, "requesting"}) }

func (r *recorder) Track(id string, write, contended bool) Token {
	what := "taken"
	if contended {
		what = "wait"
	}
	r.add(event{id, write, what})
	return &recToken{r: r, id: id, write: write}
}

type recToken struct {
	r     *recorder
	id    string
	write bool
}

func (t *recToken) Acquired() { t.r.add(event{t.id, t.write, "acquired"}) }
func (t *recToken) Released() { t.r.add(event{t.id, t.write, "released"}) }

func TestLockObserver(t *testing.T) {
	rec := &recorder{}
	s, _ := newTestStorage(t, Status{CreatedAt: 1}, WithLockObserver(rec))
	s.Get()
	if err := s.UpdateSync(func(st Status) (Status, error) {
		// The observer has seen the acquisition before fn runs.
		rec.add(event{"c1", true, "fn"})
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(st Status) (Status, error) { return st, errors.New("no") }); err == nil {
		t.Fatal("Update fn error lost")
	}
	want := []event{
		{"c1", false, "requesting"}, {"c1", false, "taken"}, {"c1", false, "acquired"}, {"c1", false, "released"},
		{"c1", true, "requesting"}, {"c1", true, "taken"}, {"c1", true, "acquired"}, {"c1", true, "fn"}, {"c1", true, "released"},
		{"c1", true, "requesting"}, {"c1", true, "taken"}, {"c1", true, "acquired"}, {"c1", true, "released"},
	}
	if len(rec.events) != len(want) {
		t.Fatalf("events %v; want %v", rec.events, want)
	}
	for i := range want {
		if rec.events[i] != want[i] {
			t.Fatalf("event %d = %v; want %v (all: %v)", i, rec.events[i], want[i], rec.events)
		}
	}
}

func TestDelete(t *testing.T) {
	s, root := newTestStorage(t, Status{CreatedAt: 1})
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(root, "status"), root, root + ".del-status"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Delete (stat: %v)", p, err)
		}
	}
	if err := s.Delete(); err != nil {
		t.Fatalf("second Delete = %v; want nil", err)
	}
}

func TestDeleteKeepsOtherFiles(t *testing.T) {
	s, root := newTestStorage(t, Status{CreatedAt: 1})
	other := filepath.Join(root, "other")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "status")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("status still exists: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("Delete removed a file it does not own: %v", err)
	}
}
