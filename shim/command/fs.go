package command

import (
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// FS is the filesystem a program sees. Paths are absolute and clean.
// Errors are *fs.PathError carrying a syscall.Errno (ENOENT, EROFS, EISDIR,
// ENOTDIR, EEXIST, ENOTEMPTY, EBUSY), as the kernel would answer.
type FS interface {
	// Open opens a file; flag and perm are os.OpenFile's.
	Open(name string, flag int, perm fs.FileMode) (io.ReadWriteCloser, error)
	Stat(name string) (fs.FileInfo, error)
	// ReadDir lists a directory, sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
	Mkdir(name string, perm fs.FileMode) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Writable reports whether name's filesystem takes writes (EROFS if not).
	Writable(name string) error
}

// Mount is a bind mount into the container: Source is a host path, read
// (and, unless ReadOnly, written) for real, as a hostPath volume is.
type Mount struct {
	Destination string
	Source      string
	ReadOnly    bool
}

// ViewConfig describes a container's filesystem.
type ViewConfig struct {
	Mounts []Mount
	// ReadOnlyRoot refuses writes outside the mounts (readOnlyRootFilesystem).
	ReadOnlyRoot bool
	Hostname     string
	// Sysctls appear under /proc/sys (net.core.somaxconn is
	// /proc/sys/net/core/somaxconn), read-only as in a container.
	Sysctls map[string]string
}

// View is a container's filesystem view, shared by its main process and
// every exec in it: the rootfs is kept in memory (the image's files are not
// modelled, only the directories every image has, /etc/hostname and
// /etc/hosts, and what the container writes), mounts are the host's, and
// /proc/sys holds the pod's sysctls. Safe for concurrent use.
type View struct {
	cfg   ViewConfig
	clock clock.Clock
	born  time.Time // the image's files' modification time

	mu    sync.Mutex
	files map[string]*memFile // nil until first used: filesLocked
}

type memFile struct {
	dir     bool
	data    []byte
	modTime time.Time
}

// baseDirs are the directories of every image's rootfs.
var baseDirs = []string{"/", "/bin", "/dev", "/etc", "/home", "/proc", "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/local", "/usr/local/bin", "/usr/sbin", "/var", "/var/log", "/var/run"}

// NewView makes a container's view.
func NewView(cfg ViewConfig, clk clock.Clock) *View {
	v := &View{cfg: cfg, clock: clk, born: clk.Now()}
	v.cfg.Mounts = slices.Clone(cfg.Mounts)
	for i := range v.cfg.Mounts {
		v.cfg.Mounts[i].Destination = path.Clean("/" + v.cfg.Mounts[i].Destination)
	}
	// The longest destination first, so a nested mount wins.
	slices.SortStableFunc(v.cfg.Mounts, func(a, b Mount) int { return len(b.Destination) - len(a.Destination) })
	return v
}

// filesLocked makes the image's files on first use: most containers (every
// pod's pause) never look at their filesystem, and 21 entries a container
// are a measurable part of a full node's memory. They carry the view's
// creation time, as if made then.
func (v *View) filesLocked() {
	if v.files != nil {
		return
	}
	v.files = make(map[string]*memFile, len(baseDirs)+2)
	for _, d := range baseDirs {
		v.files[d] = &memFile{dir: true, modTime: v.born}
	}
	host := v.cfg.Hostname
	if host == "" {
		host = "localhost"
	}
	v.files["/etc/hostname"] = &memFile{data: []byte(host + "\n"), modTime: v.born}
	v.files["/etc/hosts"] = &memFile{data: []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), modTime: v.born}
}

func pathErr(op, name string, errno syscall.Errno) error {
	return &fs.PathError{Op: op, Path: name, Err: errno}
}

// mountFor finds the mount holding name and the host path it maps to.
func (v *View) mountFor(name string) (Mount, string, bool) {
	for _, m := range v.cfg.Mounts {
		if name == m.Destination {
			return m, m.Source, true
		}
		if rest, ok := strings.CutPrefix(name, m.Destination+"/"); ok || m.Destination == "/" {
			if m.Destination == "/" {
				rest = strings.TrimPrefix(name, "/")
			}
			return m, filepath.Join(m.Source, rest), true
		}
	}
	return Mount{}, "", false
}

const procSys = "/proc/sys"

// sysctl is the value of a /proc/sys file, or whether name is one of its
// directories.
func (v *View) sysctl(name string) (value string, isDir, ok bool) {
	if name == procSys {
		return "", true, true
	}
	rest, under := strings.CutPrefix(name, procSys+"/")
	if !under {
		return "", false, false
	}
	for k, val := range v.cfg.Sysctls {
		p := strings.ReplaceAll(k, ".", "/")
		if p == rest {
			return val + "\n", false, true
		}
		if strings.HasPrefix(p, rest+"/") {
			return "", true, true
		}
	}
	return "", false, false
}

// Writable implements FS.
func (v *View) Writable(name string) error {
	if name == "/dev/null" {
		return nil
	}
	if m, _, ok := v.mountFor(name); ok {
		if m.ReadOnly {
			return pathErr("write", name, syscall.EROFS)
		}
		return nil
	}
	if _, _, ok := v.sysctl(name); ok || name == "/proc" || strings.HasPrefix(name, "/proc/") {
		return pathErr("write", name, syscall.EROFS)
	}
	if v.cfg.ReadOnlyRoot {
		return pathErr("write", name, syscall.EROFS)
	}
	return nil
}

const writeFlags = os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_TRUNC | os.O_APPEND

// Open implements FS.
func (v *View) Open(name string, flag int, perm fs.FileMode) (io.ReadWriteCloser, error) {
	writing := flag&writeFlags != 0
	if name == "/dev/null" {
		return devNull{}, nil
	}
	if writing {
		if err := v.Writable(name); err != nil {
			return nil, pathErr("open", name, syscall.EROFS)
		}
	}
	if _, host, ok := v.mountFor(name); ok {
		f, err := os.OpenFile(host, flag, perm)
		if err != nil {
			return nil, hostErr("open", name, err)
		}
		return f, nil
	}
	if val, isDir, ok := v.sysctl(name); ok {
		if isDir {
			return nil, pathErr("open", name, syscall.EISDIR)
		}
		return &memHandle{data: []byte(val)}, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.filesLocked()
	f, exists := v.files[name]
	switch {
	case exists && f.dir:
		return nil, pathErr("open", name, syscall.EISDIR)
	case !exists && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, syscall.ENOENT)
	case exists && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, syscall.EEXIST)
	case !exists:
		if err := v.parentDirLocked(name); err != nil {
			return nil, err
		}
		f = &memFile{modTime: v.clock.Now()}
		v.files[name] = f
	}
	if flag&os.O_TRUNC != 0 {
		f.data, f.modTime = nil, v.clock.Now()
	}
	if !writing {
		return &memHandle{data: slices.Clone(f.data)}, nil
	}
	return &memWriter{v: v, f: f, appending: flag&os.O_APPEND != 0}, nil
}

// parentDirLocked checks that name's parent is a directory.
func (v *View) parentDirLocked(name string) error {
	dir := path.Dir(name)
	if f, ok := v.files[dir]; ok {
		if !f.dir {
			return pathErr("open", name, syscall.ENOTDIR)
		}
		return nil
	}
	if v.impliedDirLocked(dir) {
		return nil
	}
	return pathErr("open", name, syscall.ENOENT)
}

// impliedDirLocked: a directory that holds a mount point exists.
func (v *View) impliedDirLocked(name string) bool {
	for _, m := range v.cfg.Mounts {
		if strings.HasPrefix(m.Destination, strings.TrimSuffix(name, "/")+"/") {
			return true
		}
	}
	return false
}

// Stat implements FS.
func (v *View) Stat(name string) (fs.FileInfo, error) {
	if name == "/dev/null" {
		return fileInfo{name: "null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}, nil
	}
	if _, host, ok := v.mountFor(name); ok {
		fi, err := os.Stat(host)
		if err != nil {
			return nil, hostErr("stat", name, err)
		}
		return fi, nil
	}
	if val, isDir, ok := v.sysctl(name); ok {
		if isDir {
			return fileInfo{name: path.Base(name), mode: fs.ModeDir | 0o555}, nil
		}
		return fileInfo{name: path.Base(name), mode: 0o644, size: int64(len(val))}, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.filesLocked()
	if f, ok := v.files[name]; ok {
		return f.info(path.Base(name)), nil
	}
	if v.impliedDirLocked(name) {
		return fileInfo{name: path.Base(name), mode: fs.ModeDir | 0o755}, nil
	}
	return nil, pathErr("stat", name, syscall.ENOENT)
}

// ReadDir implements FS.
func (v *View) ReadDir(name string) ([]fs.DirEntry, error) {
	if _, host, ok := v.mountFor(name); ok {
		entries, err := os.ReadDir(host)
		if err != nil {
			return nil, hostErr("open", name, err)
		}
		return entries, nil
	}
	fi, err := v.Stat(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err.(*fs.PathError).Err}
	}
	if !fi.IsDir() {
		return nil, pathErr("open", name, syscall.ENOTDIR)
	}
	seen := map[string]fs.DirEntry{}
	prefix := strings.TrimSuffix(name, "/") + "/"
	child := func(p string) (string, bool) {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || rest == "" {
			return "", false
		}
		first, _, _ := strings.Cut(rest, "/")
		return first, true
	}
	v.mu.Lock()
	v.filesLocked()
	for p := range v.files {
		if c, ok := child(p); ok && !strings.Contains(strings.TrimPrefix(p, prefix), "/") {
			seen[c] = fs.FileInfoToDirEntry(v.files[p].info(c))
		}
	}
	for _, m := range v.cfg.Mounts {
		if c, ok := child(m.Destination); ok {
			if _, dup := seen[c]; !dup {
				seen[c] = fs.FileInfoToDirEntry(fileInfo{name: c, mode: fs.ModeDir | 0o755})
			}
		}
	}
	v.mu.Unlock()
	for k := range v.cfg.Sysctls {
		if c, ok := child(procSys + "/" + strings.ReplaceAll(k, ".", "/")); ok {
			if fi, err := v.Stat(prefix + c); err == nil {
				seen[c] = fs.FileInfoToDirEntry(fi)
			}
		}
	}
	if name == "/proc" {
		seen["sys"] = fs.FileInfoToDirEntry(fileInfo{name: "sys", mode: fs.ModeDir | 0o555})
	}
	if name == "/dev" {
		seen["null"] = fs.FileInfoToDirEntry(fileInfo{name: "null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666})
	}
	out := make([]fs.DirEntry, 0, len(seen))
	for _, e := range seen {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Mkdir implements FS.
func (v *View) Mkdir(name string, perm fs.FileMode) error {
	if err := v.Writable(name); err != nil {
		return pathErr("mkdir", name, syscall.EROFS)
	}
	if _, host, ok := v.mountFor(name); ok {
		if err := os.Mkdir(host, perm); err != nil {
			return hostErr("mkdir", name, err)
		}
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.filesLocked()
	if _, ok := v.files[name]; ok || v.impliedDirLocked(name) {
		return pathErr("mkdir", name, syscall.EEXIST)
	}
	if err := v.parentDirLocked(name); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err.(*fs.PathError).Err}
	}
	v.files[name] = &memFile{dir: true, modTime: v.clock.Now()}
	return nil
}

// Remove implements FS.
func (v *View) Remove(name string) error {
	for _, m := range v.cfg.Mounts {
		if m.Destination == name {
			return pathErr("remove", name, syscall.EBUSY)
		}
	}
	if err := v.Writable(name); err != nil {
		return pathErr("remove", name, syscall.EROFS)
	}
	if _, host, ok := v.mountFor(name); ok {
		if err := os.Remove(host); err != nil {
			return hostErr("remove", name, err)
		}
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.filesLocked()
	f, ok := v.files[name]
	if !ok {
		if v.impliedDirLocked(name) {
			return pathErr("remove", name, syscall.EBUSY)
		}
		return pathErr("remove", name, syscall.ENOENT)
	}
	if f.dir {
		for p := range v.files {
			if strings.HasPrefix(p, name+"/") {
				return pathErr("remove", name, syscall.ENOTEMPTY)
			}
		}
	}
	delete(v.files, name)
	return nil
}

// hostErr keeps the errno of a host call's error under the container path.
func hostErr(op, name string, err error) error {
	var errno syscall.Errno
	if pe, ok := err.(*fs.PathError); ok {
		if e, ok := pe.Err.(syscall.Errno); ok {
			errno = e
		}
	}
	if errno == 0 {
		errno = syscall.EIO
	}
	return pathErr(op, name, errno)
}

func (f *memFile) info(name string) fileInfo {
	if f.dir {
		return fileInfo{name: name, mode: fs.ModeDir | 0o755, modTime: f.modTime}
	}
	return fileInfo{name: name, mode: 0o644, size: int64(len(f.data)), modTime: f.modTime}
}

type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return fi.modTime }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

// memHandle reads a snapshot of a file.
type memHandle struct {
	data []byte
	off  int
}

func (h *memHandle) Read(p []byte) (int, error) {
	if h.off >= len(h.data) {
		return 0, io.EOF
	}
	n := copy(p, h.data[h.off:])
	h.off += n
	return n, nil
}

func (h *memHandle) Write([]byte) (int, error) { return 0, syscall.EBADF }
func (h *memHandle) Close() error              { return nil }

// memWriter writes through to the file, so a concurrent reader (an exec's
// cat) sees every write at once.
type memWriter struct {
	v         *View
	f         *memFile
	off       int
	appending bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.v.mu.Lock()
	defer w.v.mu.Unlock()
	if w.appending {
		w.off = len(w.f.data)
	}
	end := w.off + len(p)
	if end > len(w.f.data) {
		w.f.data = append(w.f.data, make([]byte, end-len(w.f.data))...)
	}
	copy(w.f.data[w.off:], p)
	w.off = end
	w.f.modTime = w.v.clock.Now()
	return len(p), nil
}

func (w *memWriter) Read([]byte) (int, error) { return 0, syscall.EBADF }
func (w *memWriter) Close() error             { return nil }

type devNull struct{}

func (devNull) Read([]byte) (int, error)    { return 0, io.EOF }
func (devNull) Write(p []byte) (int, error) { return len(p), nil }
func (devNull) Close() error                { return nil }
