package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const testDigest = "sha256:817a12c32a39bbe394944ba49de563e085f1d3c5266eb8e9723256bc4448680e"

func TestParseReference(t *testing.T) {
	long := strings.Repeat("t", tagLengthMax)
	for _, tc := range []struct {
		in        string
		want      reference
		str       string // String()
		dockerRef string // DockerRef(); "" means the same as str
		familiar  string
	}{
		{"busybox", reference{"docker.io", "library/busybox", "latest", ""}, "docker.io/library/busybox:latest", "", "busybox:latest"},
		{"busybox:1.36", reference{"docker.io", "library/busybox", "1.36", ""}, "docker.io/library/busybox:1.36", "", "busybox:1.36"},
		{"foo/bar", reference{"docker.io", "foo/bar", "latest", ""}, "docker.io/foo/bar:latest", "", "foo/bar:latest"},
		{"docker.io/busybox", reference{"docker.io", "library/busybox", "latest", ""}, "docker.io/library/busybox:latest", "", "busybox:latest"},
		{"index.docker.io/library/busybox:1", reference{"docker.io", "library/busybox", "1", ""}, "docker.io/library/busybox:1", "", "busybox:1"},
		{"docker.io/library/busybox:latest", reference{"docker.io", "library/busybox", "latest", ""}, "docker.io/library/busybox:latest", "", "busybox:latest"},
		{"registry.k8s.io/pause:3.10", reference{"registry.k8s.io", "pause", "3.10", ""}, "registry.k8s.io/pause:3.10", "", "registry.k8s.io/pause:3.10"},
		{"localhost:5000/x", reference{"localhost:5000", "x", "latest", ""}, "localhost:5000/x:latest", "", "localhost:5000/x:latest"},
		{"localhost/x:y", reference{"localhost", "x", "y", ""}, "localhost/x:y", "", "localhost/x:y"},
		{"localhost:5000", reference{"docker.io", "library/localhost", "5000", ""}, "docker.io/library/localhost:5000", "", "localhost:5000"},
		{"[::1]:5000/foo:bar", reference{"[::1]:5000", "foo", "bar", ""}, "[::1]:5000/foo:bar", "", "[::1]:5000/foo:bar"},
		{"my-registry.example.com/a/b/c:v1.2-3_4", reference{"my-registry.example.com", "a/b/c", "v1.2-3_4", ""}, "my-registry.example.com/a/b/c:v1.2-3_4", "", "my-registry.example.com/a/b/c:v1.2-3_4"},
		{"a__b/c-d/e.f--g:_x", reference{"docker.io", "a__b/c-d/e.f--g", "_x", ""}, "docker.io/a__b/c-d/e.f--g:_x", "", "a__b/c-d/e.f--g:_x"},
		// An upper-case first component can only be a domain.
		{"Example/bar", reference{"Example", "bar", "latest", ""}, "Example/bar:latest", "", "Example/bar:latest"},
		{"busybox:" + long, reference{"docker.io", "library/busybox", long, ""}, "docker.io/library/busybox:" + long, "", "busybox:" + long},
		{"busybox@" + testDigest, reference{"docker.io", "library/busybox", "", testDigest}, "docker.io/library/busybox@" + testDigest, "", "busybox@" + testDigest},
		// Tag and digest: both kept; containerd names the image by digest.
		{"busybox:1.36@" + testDigest, reference{"docker.io", "library/busybox", "1.36", testDigest}, "docker.io/library/busybox:1.36@" + testDigest, "docker.io/library/busybox@" + testDigest, "busybox:1.36@" + testDigest},
		{"gcr.io/k8s-staging-cri-tools/test-image-digest@sha384:" + strings.Repeat("a", 96), reference{"gcr.io", "k8s-staging-cri-tools/test-image-digest", "", "sha384:" + strings.Repeat("a", 96)}, "gcr.io/k8s-staging-cri-tools/test-image-digest@sha384:" + strings.Repeat("a", 96), "", "gcr.io/k8s-staging-cri-tools/test-image-digest@sha384:" + strings.Repeat("a", 96)},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseReference(tc.in)
			if err != nil {
				t.Fatalf("parseReference(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("parseReference(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.str {
				t.Errorf("String() = %q, want %q", s, tc.str)
			}
			wantDocker := tc.dockerRef
			if wantDocker == "" {
				wantDocker = tc.str
			}
			if s := got.DockerRef(); s != wantDocker {
				t.Errorf("DockerRef() = %q, want %q", s, wantDocker)
			}
			if s := got.Familiar(); s != tc.familiar {
				t.Errorf("Familiar() = %q, want %q", s, tc.familiar)
			}
			// The canonical form is a fixed point.
			again, err := parseReference(got.String())
			if err != nil || again != got {
				t.Errorf("parseReference(%q) = %+v, %v; want %+v", got.String(), again, err, got)
			}
		})
	}
}

func TestParseReferenceInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"BusyBox",
		"docker.io/Library/busybox",
		"busybox:",
		"busybox@",
		"busybox@sha256:abc",
		"busybox@sha256:" + strings.Repeat("A", 64),
		"busybox@md5:" + strings.Repeat("a", 32),
		"busybox@" + strings.Repeat("a", 64),
		"bus ybox",
		"busybox:" + strings.Repeat("t", tagLengthMax+1),
		"busybox:-tag",
		"busybox:ta/g",
		"-busybox",
		"busybox-",
		"foo//bar",
		"foo/bar/",
		"/foo",
		"a..b",
		"a___b",
		"a.-b",
		"exa_mple.com/foo",
		"localhost:port/foo",
		"-bad.com/foo",
		"[zz]:5000/foo",
		strings.Repeat("a", 64),
		"registry.example.com/" + strings.Repeat("a", nameTotalLengthMax),
	} {
		t.Run(in, func(t *testing.T) {
			ref, err := parseReference(in)
			if err == nil {
				t.Fatalf("parseReference(%q) = %+v, want an error", in, ref)
			}
			if c := status.Code(err); c != codes.InvalidArgument {
				t.Errorf("parseReference(%q) code = %v, want InvalidArgument (%v)", in, c, err)
			}
			if !strings.Contains(err.Error(), "\""+in+"\"") {
				t.Errorf("error %q does not name the reference %q", err, in)
			}
		})
	}
}
