package containerd

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The normaliser and compare decide every verdict of the response diff:
// what must differ between two runtimes compares equal, anything else not.
func TestCompareNormalised(t *testing.T) {
	const (
		idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	)
	ctr := func(id, name string, created int64, image string) *cri.Container {
		return &cri.Container{Id: id, Metadata: &cri.ContainerMetadata{Name: name}, CreatedAt: created, ImageRef: image}
	}
	cases := []struct {
		name       string
		real, fake proto.Message
		rerr, ferr error
		diffs      []string // fields that must differ
	}{
		{name: "ids, times and digests normalised",
			real: &cri.ListContainersResponse{Containers: []*cri.Container{ctr(idA, "c1", 1, "sha256:"+idA)}},
			fake: &cri.ListContainersResponse{Containers: []*cri.Container{ctr(idB, "c1", 2, "sha256:"+idB)}}},
		{name: "list order does not matter",
			real: &cri.ListContainersResponse{Containers: []*cri.Container{ctr(idA, "c1", 1, ""), ctr(idA+"1", "c2", 1, "")}},
			fake: &cri.ListContainersResponse{Containers: []*cri.Container{ctr(idB+"1", "c2", 1, ""), ctr(idB, "c1", 1, "")}}},
		{name: "a name differs",
			real:  &cri.ListContainersResponse{Containers: []*cri.Container{ctr(idA, "c1", 1, "")}},
			fake:  &cri.ListContainersResponse{Containers: []*cri.Container{ctr(idB, "c9", 1, "")}},
			diffs: []string{"containers[0].metadata.name"}},
		{name: "a field only one side sets",
			real:  &cri.VersionResponse{Version: "0.1.0"},
			fake:  &cri.VersionResponse{Version: "0.1.0", RuntimeName: "x"},
			diffs: []string{"runtime_name"}},
		{name: "codes and texts",
			rerr:  status.Error(codes.Unknown, "container \""+idA+"\" is running"),
			ferr:  status.Error(codes.FailedPrecondition, "container \""+idB+"\" is running"),
			diffs: []string{"code"}},
		{name: "a plain error is Unknown",
			rerr: errors.New("boom"), ferr: status.Error(codes.Unknown, "boom")},
		{name: "verbose info opened",
			real:  &cri.ContainerStatusResponse{Info: map[string]string{"info": `{"pid":12,"sandboxID":"` + idA + `","x":{"y":{"z":1}}}`}},
			fake:  &cri.ContainerStatusResponse{Info: map[string]string{"info": `{"pid":99,"sandboxID":"` + idB + `","x":{"y":{"w":1}}}`}},
			diffs: []string{"info.info.x.y"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rn, fn := newNormaliser(), newNormaliser()
			rn.name(idA, "<c1>")
			rn.name(idA+"1", "<c2>")
			fn.name(idB, "<c1>")
			fn.name(idB+"1", "<c2>")
			ds := compare(rn.outcomeOf(tc.real, tc.rerr), fn.outcomeOf(tc.fake, tc.ferr))
			var got []string
			for _, d := range ds {
				got = append(got, d.field)
			}
			if len(got) != len(tc.diffs) {
				t.Fatalf("differences %v (%+v), want %v", got, ds, tc.diffs)
			}
			for i := range got {
				if got[i] != tc.diffs[i] {
					t.Errorf("difference %d is %q, want %q", i, got[i], tc.diffs[i])
				}
			}
		})
	}
}

func TestDeliberateCovers(t *testing.T) {
	for _, tc := range []struct {
		release, step, field string
		want                 bool
	}{
		{"1.6", "runp same name (conflict)", "code", true},
		{"2.x", "runp same name (conflict)", "code", true},
		{"1.6", "runp same name (conflict)", "error", false},
		{"1.6", "stop missing", "code", true},
		{"1.7", "stop missing", "code", true},
		// 2.0 made stops idempotent, as the fake: no longer deliberate.
		{"2.x", "stop missing", "code", false},
		{"1.6", "start missing", "code", false},
		{"1.6", "inspect (running)", "status.image_id", true},
		{"2.x", "inspect (running)", "status.image_id", false},
		{"1.6", "inspect (running)", "status.state", false},
		{"1.6", "pull empty reference", "code", true},
		{"1.6", "pull empty reference", "error", false},
		{"1.6", "runtime config", "code", true},
		{"1.7", "runtime config", "code", true},
		{"2.x", "runtime config", "code", false},
	} {
		got := false
		for _, d := range deliberates {
			if d.covers(tc.release, tc.step, tc.field) {
				got = true
				break
			}
		}
		if got != tc.want {
			t.Errorf("%s: %s / %s: deliberate %v, want %v", tc.release, tc.step, tc.field, got, tc.want)
		}
	}
}

func TestReleaseOf(t *testing.T) {
	for in, want := range map[string]string{
		"1.6.20~ds1": "1.6", "v1.6.20": "1.6", "1.7.30": "1.7", "v1.7.0-rc.1": "1.7",
		"2.2.7+unknown": "2.x", "v2.0.0": "2.x", "2.1.4": "2.x", "": "",
	} {
		if got := releaseOf(in); got != want {
			t.Errorf("releaseOf(%q) = %q, want %q", in, got, want)
		}
	}
}
