package container

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func testConfig() *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "app", Attempt: 2},
		Image:    &runtime.ImageSpec{Image: "docker.io/library/busybox:latest"},
		Command:  []string{"sleep", "inf"},
		Labels:   map[string]string{"io.kubernetes.pod.name": "p"},
		Linux: &runtime.LinuxContainerConfig{
			Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 30, CpuShares: 512},
		},
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		md   Metadata
	}{
		{name: "full", md: Metadata{
			ID: "c1", Name: "app_p_ns_uid_2", SandboxID: "s1", Config: testConfig(),
			ImageRef: "sha256:abc", LogPath: "/var/log/pods/x/app/2.log", StopSignal: "SIGTERM",
		}},
		{name: "nil config", md: Metadata{ID: "c2", Name: "n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := json.Marshal(&tc.md)
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
			if !proto.Equal(got.Config, tc.md.Config) {
				t.Fatalf("Config = %v; want %v", got.Config, tc.md.Config)
			}
			got.Config, tc.md.Config = nil, nil
			if got != tc.md {
				t.Fatalf("got %+v; want %+v", got, tc.md)
			}
		})
	}
}

func TestMetadataUnsupportedVersion(t *testing.T) {
	var md Metadata
	err := json.Unmarshal([]byte(`{"Version":"v2","Metadata":{"ID":"c1"}}`), &md)
	if err == nil || !strings.Contains(err.Error(), "unsupported metadata version") {
		t.Fatalf("Unmarshal of v2 = %v; want unsupported version", err)
	}
}
