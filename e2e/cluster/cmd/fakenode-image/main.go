// Command fakenode-image writes the fake-node container image (kubelet +
// fakecontainerd, deploy/Containerfile) as a docker-archive tarball without a
// container engine: `docker load`, `podman load` and `ctr images import` all
// read it.
//
//	fakenode-image -o OUT.tar -kubelet PATH -fakecontainerd PATH [-rootfs DIR] [-busybox PATH] [-base DIR] [-tag REF]
//
// The image has two layers, the same files at the same paths as the
// Containerfile builds:
//
//  1. the base: Debian's busybox-static at /bin/busybox with a link in /bin
//     for every applet (what `busybox --install -s /bin` makes), the files
//     of -rootfs (deploy/rootfs: /etc/passwd, group, nsswitch.conf,
//     os-release) and the usual empty directories; or, with -base DIR, that
//     root filesystem instead (a debootstrap folder, say).
//  2. the binaries at /usr/local/bin, and for a dynamically linked one (Go
//     with cgo) its ELF interpreter and the shared libraries it needs,
//     copied from this machine at the paths it asks for.
//
// Every entry is owned by root with mtime 0, so the same inputs give the
// same image digest.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakenode-image:", err)
		os.Exit(1)
	}
}

// DefaultTag is the image the StatefulSet in deploy/base/fake-nodes.yaml runs.
const DefaultTag = "fakecontainerd/fake-node:dev"

type options struct {
	out, kubelet, fakecontainerd string
	rootfs, busybox, base, tag   string
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("fakenode-image", flag.ContinueOnError)
	fs.StringVar(&o.out, "o", "", "the docker-archive tarball to write (required)")
	fs.StringVar(&o.kubelet, "kubelet", "", "the kubelet binary (required; e2e/kubelet/build-kubelet.sh)")
	fs.StringVar(&o.fakecontainerd, "fakecontainerd", "", "the fakecontainerd binary (required; make build)")
	fs.StringVar(&o.rootfs, "rootfs", "", "a folder whose files go into the base layer as they are (deploy/rootfs)")
	fs.StringVar(&o.busybox, "busybox", "/bin/busybox", "a static busybox for the base layer (Debian's busybox-static)")
	fs.StringVar(&o.base, "base", "", "a root filesystem folder to use as the base layer instead of busybox")
	fs.StringVar(&o.tag, "tag", DefaultTag, "the image reference the tarball names")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, f := range []struct{ flag, v string }{{"-o", o.out}, {"-kubelet", o.kubelet}, {"-fakecontainerd", o.fakecontainerd}} {
		if f.v == "" {
			return fmt.Errorf("%s is required", f.flag)
		}
	}
	t0 := time.Now()
	digest, err := build(o)
	if err != nil {
		return err
	}
	st, err := os.Stat(o.out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s %s, %.1f MiB, in %.1fs\n", o.out, o.tag, digest, float64(st.Size())/(1<<20), time.Since(t0).Seconds())
	return nil
}

// build writes the image to o.out (through a temporary file, so a failed
// build leaves no half tarball) and returns its digest.
func build(o options) (v1.Hash, error) {
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("-tag %q: %w", o.tag, err)
	}
	base, err := baseLayout(o)
	if err != nil {
		return v1.Hash{}, err
	}
	bins, err := binariesLayout(map[string]string{"kubelet": o.kubelet, "fakecontainerd": o.fakecontainerd})
	if err != nil {
		return v1.Hash{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(o.out), ".fakenode-image-")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("temporary folder next to -o %s: %w", o.out, err)
	}
	defer os.RemoveAll(tmp)
	var layers []v1.Layer
	for i, l := range []*layout{base, bins} {
		p := filepath.Join(tmp, fmt.Sprintf("layer%d.tar", i))
		if err := l.writeTar(p); err != nil {
			return v1.Hash{}, err
		}
		layer, err := tarball.LayerFromFile(p)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("layer %s: %w", p, err)
		}
		layers = append(layers, layer)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = runtime.GOARCH, "linux"
	cf.Config = v1.Config{
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Entrypoint: []string{"/usr/local/bin/fakecontainerd"},
		WorkingDir: "/",
	}
	cf.History = []v1.History{
		{CreatedBy: "fakenode-image: base (" + base.source + ")"},
		{CreatedBy: "fakenode-image: kubelet, fakecontainerd and their libraries in /usr/local/bin"},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return v1.Hash{}, fmt.Errorf("image config: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	part := filepath.Join(tmp, "image.tar")
	if err := tarball.WriteToFile(part, tag, img); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s: %w", o.out, err)
	}
	if err := os.Rename(part, o.out); err != nil {
		return v1.Hash{}, fmt.Errorf("write %s: %w", o.out, err)
	}
	return digest, nil
}

// entry is one file of a layer: a folder, a symlink, or a regular file
// whose content is src's (a host path) or data.
type entry struct {
	typ  byte // tar.TypeDir, TypeSymlink, TypeReg
	mode int64
	link string
	src  string
	data []byte
}

// layout is the files of one layer, by path without the leading slash.
type layout struct {
	source  string
	entries map[string]entry
}

func newLayout(source string) *layout { return &layout{source: source, entries: map[string]entry{}} }

// add puts e at p and a folder (0755) at every parent p lacks.
func (l *layout) add(p string, e entry) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := l.entries[d]; !ok {
			l.entries[d] = entry{typ: tar.TypeDir, mode: 0o755}
		}
	}
	l.entries[p] = e
}

// paths lists the layout's paths, absolute, sorted (what the Containerfile
// test compares).
func (l *layout) paths() []string {
	var out []string
	for p := range l.entries {
		out = append(out, "/"+p)
	}
	slices.Sort(out)
	return out
}

// writeTar writes the layer, parents before children, root-owned, mtime 0.
func (l *layout) writeTar(p string) error {
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("layer %s: %w", p, err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	names := make([]string, 0, len(l.entries))
	for n := range l.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		e := l.entries[n]
		h := &tar.Header{Typeflag: e.typ, Name: n, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if e.typ == tar.TypeDir {
			h.Name += "/"
		}
		var content io.Reader
		if e.typ == tar.TypeReg {
			if e.src == "" {
				h.Size, content = int64(len(e.data)), bytes.NewReader(e.data)
			} else {
				src, err := os.Open(e.src)
				if err != nil {
					return fmt.Errorf("layer file /%s: %w", n, err)
				}
				defer src.Close()
				st, err := src.Stat()
				if err != nil {
					return fmt.Errorf("layer file /%s: %w", n, err)
				}
				h.Size, content = st.Size(), src
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("layer %s: /%s: %w", p, n, err)
		}
		if content != nil {
			if _, err := io.Copy(tw, content); err != nil {
				return fmt.Errorf("layer %s: /%s: %w", p, n, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("layer %s: %w", p, err)
	}
	return f.Close()
}

// addTree copies a host folder's contents into the layout at its root:
// folders, regular files (their permission bits) and symlinks as they are.
func (l *layout) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("root filesystem %s: %w", dir, err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("root filesystem %s: %w", dir, err)
		}
		rel = filepath.ToSlash(rel)
		switch {
		case info.IsDir():
			l.add(rel, entry{typ: tar.TypeDir, mode: tarMode(info.Mode())})
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("root filesystem %s: %w", dir, err)
			}
			l.add(rel, entry{typ: tar.TypeSymlink, mode: 0o777, link: target})
		case info.Mode().IsRegular():
			l.add(rel, entry{typ: tar.TypeReg, mode: tarMode(info.Mode()), src: p})
		default:
			// Devices, sockets, fifos: the runtime makes /dev; a base
			// folder's others are not a root filesystem's business.
		}
		return nil
	})
}

// baseLayout is layer 1: -base as it is, or busybox and its applet links.
func baseLayout(o options) (*layout, error) {
	if o.base != "" {
		l := newLayout("root filesystem " + filepath.Base(o.base))
		if st, err := os.Stat(o.base); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("-base %s: not a folder (%v)", o.base, err)
		}
		return l, l.addTree(o.base)
	}
	l := newLayout("busybox")
	if err := isStatic(o.busybox); err != nil {
		return nil, fmt.Errorf("-busybox %s: %w (apt-get install busybox-static)", o.busybox, err)
	}
	out, err := exec.Command(o.busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("-busybox %s --list: %w", o.busybox, err)
	}
	l.add("bin/busybox", entry{typ: tar.TypeReg, mode: 0o755, src: o.busybox})
	// `busybox --install -s /bin`: every applet a symlink to the path
	// busybox runs from.
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			l.add("bin/"+a, entry{typ: tar.TypeSymlink, mode: 0o777, link: "/bin/busybox"})
		}
	}
	for _, d := range []struct {
		p    string
		mode int64
	}{{"tmp", 0o1777}, {"root", 0o700}, {"etc", 0o755}, {"run", 0o755}, {"var/lib", 0o755}, {"var/log", 0o755},
		{"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"usr/local/bin", 0o755}} {
		l.add(d.p, entry{typ: tar.TypeDir, mode: d.mode})
	}
	if o.rootfs != "" {
		if st, err := os.Stat(o.rootfs); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("-rootfs %s: not a folder (%v)", o.rootfs, err)
		}
		if err := l.addTree(o.rootfs); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// binariesLayout is layer 2: each binary as /usr/local/bin/NAME, plus the
// ELF interpreter and shared libraries of those that are dynamically linked.
func binariesLayout(bins map[string]string) (*layout, error) {
	l := newLayout("binaries")
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range bins {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		src := bins[n]
		if st, err := os.Stat(src); err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("-%s %s: not an executable file (%v)", n, src, err)
		}
		l.add("usr/local/bin/"+n, entry{typ: tar.TypeReg, mode: 0o755, src: src})
		libs, err := sharedLibraries(src)
		if err != nil {
			return nil, fmt.Errorf("-%s %s: %w", n, src, err)
		}
		for _, lib := range libs {
			l.add(lib, entry{typ: tar.TypeReg, mode: 0o755, src: lib})
		}
	}
	return l, nil
}

// libDirs are where the dynamic loader looks on Debian (amd64 and arm64),
// in its order.
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// sharedLibraries is what loading the binary takes: its ELF interpreter
// (PT_INTERP) and, transitively, its DT_NEEDED libraries, as the paths the
// loader finds them at. A static binary needs none.
func sharedLibraries(bin string) ([]string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("read ELF: %w", err)
	}
	defer f.Close()
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, fmt.Errorf("read PT_INTERP: %w", err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp == "" {
		return nil, nil
	}
	out := []string{interp}
	seen := map[string]bool{path.Base(interp): true} // the loader is loaded already
	queue, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("read DT_NEEDED: %w", err)
	}
	for len(queue) > 0 {
		lib := queue[0]
		queue = queue[1:]
		if seen[lib] {
			continue
		}
		seen[lib] = true
		p, err := findLibrary(lib)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
		lf, err := elf.Open(p)
		if err != nil {
			return nil, fmt.Errorf("library %s: %w", p, err)
		}
		more, err := lf.ImportedLibraries()
		lf.Close()
		if err != nil {
			return nil, fmt.Errorf("library %s: DT_NEEDED: %w", p, err)
		}
		queue = append(queue, more...)
	}
	return out, nil
}

func findLibrary(lib string) (string, error) {
	for _, d := range libDirs {
		p := filepath.Join(d, lib)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("shared library %s not found in %s", lib, strings.Join(libDirs, ", "))
}

// isStatic: the file is an ELF executable without an interpreter.
func isStatic(bin string) error {
	libs, err := sharedLibraries(bin)
	if err != nil {
		return err
	}
	if len(libs) > 0 {
		return errors.New("dynamically linked; want a static busybox")
	}
	return nil
}

// tarMode is a file mode as tar's mode field: permissions and the
// setuid, setgid and sticky bits.
func tarMode(m fs.FileMode) int64 {
	out := int64(m.Perm())
	for _, b := range []struct {
		m   fs.FileMode
		bit int64
	}{{fs.ModeSetuid, 0o4000}, {fs.ModeSetgid, 0o2000}, {fs.ModeSticky, 0o1000}} {
		if m&b.m != 0 {
			out |= b.bit
		}
	}
	return out
}
