package container

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestListByPodUID(t *testing.T) {
	s := NewStore()
	add := func(id, sandbox, uid string) Container {
		t.Helper()
		root := filepath.Join(t.TempDir(), id)
		if err := os.MkdirAll(root, 0o700); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{"io.kubernetes.container.name": id}
		if uid != "" {
			labels[PodUIDLabel] = uid
		}
		c, err := NewContainer(Metadata{ID: id, SandboxID: sandbox, Config: &runtime.ContainerConfig{Labels: labels}},
			WithStatus(Status{CreatedAt: 1}, root))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	add("a1", "sa", "uid-a")
	add("a2", "sa", "uid-a")
	add("b1", "sb", "uid-b")
	add("n1", "sn", "")
	for _, tc := range []struct {
		uid  string
		want []string
	}{{"uid-a", []string{"a1", "a2"}}, {"uid-b", []string{"b1"}}, {"", nil}, {"uid-x", nil}} {
		if got := ids(s.ListByPodUID(tc.uid)); !slices.Equal(got, tc.want) && len(got)+len(tc.want) > 0 {
			t.Errorf("ListByPodUID(%q) = %v, want %v", tc.uid, got, tc.want)
		}
	}
	s.Delete("a1")
	s.Delete("b1")
	if got := ids(s.ListByPodUID("uid-a")); !slices.Equal(got, []string{"a2"}) {
		t.Errorf("after deleting a1: %v, want [a2]", got)
	}
	if got := s.ListByPodUID("uid-b"); len(got) != 0 {
		t.Errorf("after deleting b1: %v, want none", ids(got))
	}
	if len(s.byPodUID) != 1 {
		t.Errorf("index keeps %d uids, want 1 (empty sets are dropped)", len(s.byPodUID))
	}
}

func TestBrief(t *testing.T) {
	c := newTestContainer(t, "x", "s", Status{CreatedAt: 5, StartedAt: 6, Resources: &runtime.ContainerResources{}})
	state, created := c.Status.Brief()
	if state != runtime.ContainerState_CONTAINER_RUNNING || created != 5 {
		t.Errorf("Brief() = %v, %d; want RUNNING, 5", state, created)
	}
}
