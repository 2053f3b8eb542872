package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The host's static busybox and a dynamically linked binary stand in for
// kubelet and fakecontainerd (both dynamic: Go with cgo).
func testInputs(t *testing.T) (busybox, dynamic string) {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil || isStatic(busybox) != nil {
		t.Skipf("no static busybox here (apt-get install busybox-static): %v", err)
	}
	dynamic, err = exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	if libs, err := sharedLibraries(dynamic); err != nil || len(libs) == 0 {
		t.Skipf("%s is not dynamically linked here (%v)", dynamic, err)
	}
	return busybox, dynamic
}

func TestBuild(t *testing.T) {
	busybox, dynamic := testInputs(t)
	dir := t.TempDir()
	o := options{out: filepath.Join(dir, "a.tar"), kubelet: dynamic, fakecontainerd: busybox,
		rootfs: "../../deploy/rootfs", busybox: busybox, tag: DefaultTag}
	d1, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(o.out, nil)
	if err != nil {
		t.Fatalf("read back %s: %v", o.out, err)
	}
	if d, err := img.Digest(); err != nil || d != d1 {
		t.Errorf("tarball's image digest %v (%v), build returned %v", d, err, d1)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; !slices.Equal(got, []string{"/usr/local/bin/fakecontainerd"}) {
		t.Errorf("entrypoint %q", got)
	}
	if layers, _ := img.Layers(); len(layers) != 2 {
		t.Errorf("%d layers, want 2 (base, binaries)", len(layers))
	}
	// The same inputs give the same image.
	o.out = filepath.Join(dir, "b.tar")
	if d2, err := build(o); err != nil || d2 != d1 {
		t.Errorf("second build: digest %v (%v), first %v", d2, err, d1)
	}
}

func TestBuildErrors(t *testing.T) {
	busybox, dynamic := testInputs(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		o    options
		want string
	}{
		{"dynamic busybox", options{kubelet: dynamic, fakecontainerd: dynamic, busybox: dynamic}, "want a static busybox"},
		{"missing kubelet", options{kubelet: filepath.Join(dir, "nope"), fakecontainerd: dynamic, busybox: busybox}, "-kubelet"},
		{"base not a folder", options{kubelet: dynamic, fakecontainerd: dynamic, base: dynamic}, "-base"},
		{"bad tag", options{kubelet: dynamic, fakecontainerd: dynamic, busybox: busybox, tag: "Bad Tag"}, "-tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.out = filepath.Join(dir, "out.tar")
			if tc.o.tag == "" {
				tc.o.tag = DefaultTag
			}
			_, err := build(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("build: %v, want an error naming %q", err, tc.want)
			}
			if _, err := os.Stat(tc.o.out); err == nil {
				t.Errorf("a failed build left %s", tc.o.out)
			}
		})
	}
}

// TestContainerfile: deploy/Containerfile puts the same files where the
// tool does. Every path it copies to is one the tool writes, and every
// shared library the tool would copy for a cgo binary is one it copies.
func TestContainerfile(t *testing.T) {
	busybox, dynamic := testInputs(t)
	text, err := os.ReadFile("../../deploy/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	base, err := baseLayout(options{busybox: busybox, rootfs: "../../deploy/rootfs"})
	if err != nil {
		t.Fatal(err)
	}
	bins, err := binariesLayout(map[string]string{"kubelet": dynamic, "fakecontainerd": dynamic})
	if err != nil {
		t.Fatal(err)
	}
	tool := append(base.paths(), bins.paths()...)
	copied := map[string]bool{}
	copyLine := regexp.MustCompile(`(?m)^COPY (?:--from=\S+ )?(.+)$`)
	for _, m := range copyLine.FindAllStringSubmatch(string(text), -1) {
		f := strings.Fields(m[1])
		srcs, dst := f[:len(f)-1], f[len(f)-1]
		for _, src := range srcs {
			if strings.HasSuffix(src, "/") { // a folder's contents
				entries, err := os.ReadDir(filepath.Join("../../../..", src))
				if err != nil {
					t.Fatalf("Containerfile copies %s: %v", src, err)
				}
				for _, e := range entries {
					copied[filepath.Join(dst, e.Name())] = true
				}
				continue
			}
			p := dst
			if strings.HasSuffix(dst, "/") {
				p = filepath.Join(dst, filepath.Base(src))
			}
			copied[p] = true
		}
	}
	for p := range copied {
		if !slices.Contains(tool, p) {
			t.Errorf("the Containerfile copies to %s, the tool writes no such path", p)
		}
	}
	libs, _ := sharedLibraries(dynamic)
	for _, lib := range libs {
		if !copied[lib] {
			t.Errorf("the tool adds %s for a cgo binary, the Containerfile does not copy it", lib)
		}
	}
	for _, p := range []string{"/bin/busybox", "/bin/sh", "/bin/mount", "/bin/umount", "/usr/local/bin/kubelet", "/tmp"} {
		if !slices.Contains(tool, p) {
			t.Errorf("the tool's image has no %s", p)
		}
	}
	if !strings.Contains(string(text), "--install -s /bin") {
		t.Error("the Containerfile does not install busybox's applet links in /bin, as the tool does")
	}
}
