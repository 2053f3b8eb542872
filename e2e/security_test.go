package e2e

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The server as an attack surface: what its sockets allow, that nothing
// listens on the network unless configured (and then only on loopback),
// that the admin API is refused to other users, and that nothing a CRI
// caller sends makes it write outside its root, its state and the pods' log
// directories.

// socketInodes are the inodes of a process's open sockets.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			out[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return out
}

// inetSocket is one line of /proc/net/{tcp,tcp6,udp,udp6}.
type inetSocket struct {
	table  string
	local  netip.AddrPort
	listen bool
}

// inetSockets returns the IP sockets whose inodes are in inodes.
func inetSockets(t *testing.T, inodes map[string]bool) []inetSocket {
	t.Helper()
	var out []inetSocket
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open("/proc/net/" + table)
		if err != nil {
			continue // no IPv6 in this kernel
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			out = append(out, inetSocket{table: table, local: parseProcAddr(t, fields[1]), listen: fields[3] == "0A"})
		}
		f.Close()
	}
	return out
}

// parseProcAddr reads "0100007F:1F90" (little-endian words) as an address.
func parseProcAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	hexIP, hexPort, _ := strings.Cut(s, ":")
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		t.Fatalf("bad /proc/net address %q", s)
	}
	var b []byte
	for i := 0; i+8 <= len(hexIP); i += 8 {
		w, err := strconv.ParseUint(hexIP[i:i+8], 16, 32)
		if err != nil {
			t.Fatalf("bad /proc/net address %q", s)
		}
		b = append(b, byte(w), byte(w>>8), byte(w>>16), byte(w>>24))
	}
	ip, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port))
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		t.Errorf("%s is not a socket (%v)", path, fi.Mode())
	}
	return fi.Mode().Perm()
}

// listFiles lists every file and directory under root, relative to it.
func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root {
			rel, _ := filepath.Rel(root, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSecurity runs a process-mode server (so shims are processes too)
// with its working directory, HOME and TMPDIR set to an empty "jail", puts
// a workload through it that includes every path-bearing field a CRI
// caller controls, and checks the sockets, the network, the admin API and
// where files were written.
func TestSecurity(t *testing.T) {
	t.Parallel()
	jail, err := os.MkdirTemp("", "fcde-jail")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(jail) })
	d := newDaemonWith(t, func(cmd *exec.Cmd) {
		cmd.Dir = jail
		cmd.Env = append(cmd.Env, "HOME="+jail, "TMPDIR="+jail, "XDG_RUNTIME_DIR="+jail)
	}, "--shim-mode", "process", "--time-scale", "0.1")
	logDir := filepath.Join(d.dir, "pod-logs")
	d.pull("busybox")

	// A workload through every path-bearing field.
	pc := d.podConfig("sec", filepath.Join(logDir, "sec"))
	podID := d.runp(pc)
	cc := d.containerConfig("app", nil)
	cc.LogPath = "app/0.log"
	cc.Mounts = []*runtime.Mount{{ContainerPath: "/data", HostPath: filepath.Join(jail, "hostpath")}}
	cc.WorkingDir = "../../.."
	ctr := d.create(podID, cc, pc)
	d.startContainer(ctr)
	// The exec runs in the container's view, where the jail's directory
	// does not exist: touch fails there and must write nothing on the host.
	if _, _, err := d.rt.ExecSync(d.ctx(), ctr, []string{"sh", "-c", "touch " + filepath.Join(jail, "exec") + " || true"}, 2*time.Second); err != nil {
		t.Errorf("ExecSync: %v", err)
	}
	if err := d.rt.ReopenContainerLog(d.ctx(), ctr); err != nil {
		t.Errorf("ReopenContainerLog: %v", err)
	}
	for _, lp := range []string{"../escape.log", "a/../../escape.log", filepath.Join(jail, "escape.log"), "/etc/escape.log"} {
		bad := d.containerConfig("bad", nil)
		bad.LogPath = lp
		if _, err := d.rt.CreateContainer(d.ctx(), podID, bad, pc); err == nil {
			t.Errorf("CreateContainer with log path %q: accepted", lp)
		}
	}
	for _, dir := range []string{"relative-logs", "./x", ""} {
		rel := d.podConfig("rel", dir)
		id, err := d.rt.RunPodSandbox(d.ctx(), rel, "")
		if dir == "" {
			// No log directory is allowed: nothing is logged.
			if err != nil {
				t.Errorf("RunPodSandbox without a log directory: %v", err)
			} else {
				c := d.create(id, d.containerConfig("nolog", nil), rel)
				d.startContainer(c)
			}
			continue
		}
		if err == nil {
			t.Errorf("RunPodSandbox with the relative log directory %q: accepted", dir)
		}
	}
	for _, name := range []string{"a/b", "..", `a\b`} {
		if _, err := d.rt.RunPodSandbox(d.ctx(), d.podConfig(name, logDir), ""); err == nil {
			t.Errorf("RunPodSandbox named %q: accepted", name)
		}
		bad := d.containerConfig("x", nil)
		bad.Metadata.Name = name
		if _, err := d.rt.CreateContainer(d.ctx(), podID, bad, pc); err == nil {
			t.Errorf("CreateContainer named %q: accepted", name)
		}
	}
	if err := d.rt.UpdateContainerResources(d.ctx(), ctr, &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{
		CpuShares: 512, Unified: map[string]string{"../../../../etc/escape": "1"},
	}}); err != nil {
		t.Errorf("UpdateContainerResources: %v", err)
	}

	t.Run("socket modes", func(t *testing.T) {
		for _, c := range []struct {
			path string
			want fs.FileMode
		}{
			{d.sock, 0o660},
			{d.sock + ".admin", 0o600},
			{d.sock + ".ttrpc", 0o600},
		} {
			if got := fileMode(t, c.path); got != c.want {
				t.Errorf("%s: mode %v, want %v", filepath.Base(c.path), got, c.want)
			}
		}
		shims, _ := filepath.Glob(filepath.Join(d.state, "s", "*"))
		n := 0
		for _, s := range shims {
			if strings.HasSuffix(s, ".log") {
				continue
			}
			n++
			if got := fileMode(t, s); got != 0o600 {
				t.Errorf("shim socket %s: mode %v, want 0600", filepath.Base(s), got)
			}
		}
		if n == 0 {
			t.Errorf("no shim socket under %s", filepath.Join(d.state, "s"))
		}
	})

	t.Run("no network listener but streaming on loopback", func(t *testing.T) {
		pids := []int{d.pid()}
		for _, p := range shimProcesses(d.state) {
			pids = append(pids, p.pid)
		}
		if len(pids) < 2 {
			t.Fatalf("want the server and at least one shim process, found %v", pids)
		}
		for i, pid := range pids {
			inodes := socketInodes(t, pid)
			if len(inodes) == 0 {
				t.Errorf("process %d has no socket open at all: the check would be vacuous", pid)
			}
			socks := inetSockets(t, inodes)
			if i > 0 {
				if len(socks) > 0 {
					t.Errorf("shim process %d has IP sockets %v; it must have only unix sockets", pid, socks)
				}
				continue
			}
			// The server: with no debug or metrics address, its one IP
			// socket is the streaming server's, listening on loopback.
			if len(socks) != 1 || !socks[0].listen || !socks[0].local.Addr().IsLoopback() {
				t.Errorf("server process %d has IP sockets %v; want only the streaming server listening on loopback", pid, socks)
			}
		}
	})

	t.Run("admin refuses other users", func(t *testing.T) {
		// As the owner: allowed.
		if out, code := fcd(t, 10*time.Second, "fault", "list", "--address", d.sock); code != 0 {
			t.Fatalf("fault list as the socket's owner: exit %d: %s", code, out)
		}
		if os.Getuid() != 0 {
			t.Skip("needs root to run a client as another uid")
		}
		// The binary and the path to the socket must be reachable by
		// uid 65534 for the test to reach the checks it is about.
		bin := copyBinary(t)
		if err := os.Chmod(d.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		as := func(uid uint32, args ...string) (string, int) {
			cmd := exec.Command(bin, args...)
			cmd.Dir = "/"
			cmd.Env = []string{"HOME=/", "GORACE=atexit_sleep_ms=0"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); ok {
				return string(out), ee.ExitCode()
			}
			if err != nil {
				t.Fatalf("run as uid %d: %v", uid, err)
			}
			return string(out), 0
		}
		admin := d.sock + ".admin"
		// The 0600 socket: another user cannot even connect.
		out, code := as(65534, "fault", "list", "--admin", admin)
		if code == 0 || !strings.Contains(out, "permission denied") {
			t.Errorf("fault list as uid 65534 on the 0600 socket: exit %d: %s; want permission denied", code, out)
		}
		// Were the mode loosened, SO_PEERCRED still refuses (403).
		if err := os.Chmod(admin, 0o666); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(admin, 0o600)
		for _, args := range [][]string{
			{"fault", "list", "--admin", admin},
			{"fault", "set", "--admin", admin, "--point", "cri.Version.before", "error(Internal)"},
			{"fix", "enable", "--admin", admin, "volatile"},
		} {
			out, code := as(65534, args...)
			if code == 0 || !strings.Contains(out, "is not the admin socket's owner") {
				t.Errorf("%s as uid 65534: exit %d: %s; want the 403 refusal", strings.Join(args[:2], " "), code, out)
			}
		}
		if out, _ := fcd(t, 10*time.Second, "fault", "list", "--address", d.sock); strings.Contains(out, "cri.Version") {
			t.Errorf("a refused caller armed a fault: %s", out)
		}
		if _, err := d.rt.Version(d.ctx(), "v1"); err != nil {
			t.Errorf("Version after the refused admin calls: %v", err)
		}
		// The CRI socket is 0660 root:root: not for others either.
		out, code = as(65534, "fault", "list", "--admin", d.sock)
		if code == 0 || !strings.Contains(out, "permission denied") {
			t.Errorf("connect to the CRI socket as uid 65534: exit %d: %s; want permission denied", code, out)
		}
	})

	// Clean up the way kubelet does, so the shims go, then look at the
	// file system.
	for _, p := range d.pods() {
		if err := d.rt.RemovePodSandbox(d.ctx(), p.Id); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	}
	d.stop()

	t.Run("writes stay in root, state and log directories", func(t *testing.T) {
		if left := listFiles(t, jail); len(left) > 0 {
			t.Errorf("the server or a shim wrote into its working directory / HOME / TMPDIR: %v", left)
		}
		var top []string
		entries, err := os.ReadDir(d.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			top = append(top, e.Name())
		}
		// Sockets are removed at shutdown; what is left is the root,
		// the state, the log of the test and the pods' log directories.
		want := []string{"fakecontainerd.log", "pod-logs", "root", "state"}
		if !slices.Equal(top, want) {
			t.Errorf("%s holds %v, want %v", d.dir, top, want)
		}
		for _, f := range listFiles(t, logDir) {
			if f != "sec" && !strings.HasPrefix(f, "sec/app") {
				t.Errorf("pod log directory holds %s: only the pod's own directory and its container's log are expected", f)
			}
		}
		data, err := os.ReadFile(filepath.Join(logDir, "sec", "app", "0.log"))
		if err != nil || len(data) == 0 {
			t.Errorf("the container's log (%v) is empty: the check above would be vacuous", err)
		}
		for _, p := range []string{"/etc/escape.log", "/etc/escape", filepath.Join(os.TempDir(), "escape.log")} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s exists", p)
			}
		}
	})
}

// copyBinary copies the server binary to a directory any user can read,
// for a client run under another uid.
func copyBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcde-pub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(binary)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, "fakecontainerd")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNetworkEndpointsLoopbackOnly: a debug endpoint configured on a
// loopback port listens there and nowhere else; one configured on a
// network-reachable address is refused at start.
func TestNetworkEndpointsLoopbackOnly(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "fcde")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":6060", "10.0.0.1:80"} {
		cfg := writeFile(t, dir, "open.toml", fmt.Sprintf("[debug]\naddress = %q\n", addr))
		out, code := fcd(t, 10*time.Second, "serve", "--config", cfg, "--address", filepath.Join(dir, "x.sock"),
			"--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"))
		if code != 1 || !strings.Contains(out, "loopback") {
			t.Errorf("debug.address %q: exit %d: %s; want refused, naming loopback", addr, code, out)
		}
	}
	for _, addr := range []string{"0.0.0.0", "::", "", "10.0.0.1"} {
		cfg := writeFile(t, dir, "stream.toml", fmt.Sprintf("[plugins.\"io.containerd.grpc.v1.cri\"]\nstream_server_address = %q\n", addr))
		out, code := fcd(t, 10*time.Second, "serve", "--config", cfg, "--address", filepath.Join(dir, "x.sock"),
			"--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"))
		if code != 1 || !strings.Contains(out, "stream_server_address") || !strings.Contains(out, "loopback") {
			t.Errorf("stream_server_address %q: exit %d: %s; want refused, naming the key and loopback", addr, code, out)
		}
	}

	cfg := writeFile(t, dir, "loopback.toml", "[debug]\naddress = \"127.0.0.1:0\"\n")
	d := newDaemon(t, "--config", cfg)
	inodes := socketInodes(t, d.pid())
	socks := inetSockets(t, inodes)
	listening := 0
	for _, s := range socks {
		if !s.local.Addr().IsLoopback() {
			t.Errorf("%s socket on %v: not loopback", s.table, s.local)
		}
		if s.listen {
			listening++
		}
	}
	if listening != 2 {
		t.Errorf("%d listening IP sockets (%v), want the debug endpoint and the streaming server", listening, socks)
	}
	d.stop()
}
