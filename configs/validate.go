package configs

import (
	"errors"
	"fmt"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Table keys as they are written in the file, so each error names the key
// the user has to change.
const (
	criKey        = `plugins."io.containerd.grpc.v1.cri"`
	containerdKey = criKey + ".containerd"
	fakeKey       = `plugins."io.fakecontainerd.v1"`
)

// maxSocketPath is the longest unix socket path Linux accepts: sun_path is
// 108 bytes including the terminating NUL. Checking it here turns a bind
// error at start-up into an error that names the key.
const maxSocketPath = 107

// logLevelNames are the level names logrus (and so containerd) accepts.
const logLevelNames = "trace, debug, info, warn, warning, error, fatal, panic"

// Validate checks the configuration. Each problem is reported as a separate
// error naming its key, all of them joined, so one run shows every fix
// needed. Callers that override fields (from flags) call it again afterwards.
func (c *Config) Validate() error {
	return joinPrefixed(c.validate(), "config: ")
}

// joinPrefixed prefixes every error (with "config: " or the file name) and
// joins them.
func joinPrefixed(errs []error, prefix string) error {
	if len(errs) == 0 {
		return nil
	}
	wrapped := make([]error, len(errs))
	for i, err := range errs {
		wrapped[i] = fmt.Errorf("%s%w", prefix, err)
	}
	return errors.Join(wrapped...)
}

// validate returns one error per problem, each starting with its key.
func (c *Config) validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	addErr := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}

	if c.Version != 2 {
		add("version", "must be 2 (a containerd 1.x config), got %d; version 3 (containerd 2.x) configs are not supported", c.Version)
	}

	addErr("root", checkDir(c.Root))
	addErr("state", checkDir(c.State))
	// containerd refuses the same path for both (CreateTopLevelDirectories);
	// comparing cleaned paths also catches "/x" and "/x/".
	if c.Root != "" && filepath.Clean(c.Root) == filepath.Clean(c.State) {
		add("state", "must differ from root, both are %q", c.State)
	}

	addErr("grpc.address", checkGRPCAddress(c.GRPC.Address))

	if !isLogLevel(c.Debug.Level) {
		add("debug.level", "must be one of %s, got %q", logLevelNames, c.Debug.Level)
	}
	addErr("debug.address", checkListenAddress(c.Debug.Address))
	addErr("metrics.address", checkListenAddress(c.Metrics.Address))

	// The same check containerd's CRI plugin makes at start-up
	// (ValidatePluginConfig): the default handler must exist.
	ctrd := c.Plugins.CRI.Containerd
	if ctrd.DefaultRuntimeName == "" {
		add(containerdKey+".default_runtime_name", "must be set")
	} else if _, ok := ctrd.Runtimes[ctrd.DefaultRuntimeName]; !ok {
		table := toml.Key{"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", ctrd.DefaultRuntimeName}
		add(containerdKey+".default_runtime_name", "%q has no [%s] table", ctrd.DefaultRuntimeName, table)
	}

	validateStreaming(c.Plugins.CRI, add)

	f := c.Plugins.Fake
	switch f.ContainerdVersion {
	case ContainerdV16, ContainerdV17, ContainerdV2:
	default:
		add(fakeKey+".containerd_version", "must be %q, %q or %q, got %q", ContainerdV16, ContainerdV17, ContainerdV2, f.ContainerdVersion)
	}
	if f.ShimMode != ShimModeInProcess && f.ShimMode != ShimModeProcess {
		add(fakeKey+".shim_mode", "must be %q or %q, got %q", ShimModeInProcess, ShimModeProcess, f.ShimMode)
	}
	// Written so that NaN fails too.
	if !(f.TimeScale > 0 && f.TimeScale <= 1000) {
		add(fakeKey+".time_scale", "must be > 0 and <= 1000, got %v", f.TimeScale)
	}
	if f.RootfsWriteRate < 0 {
		add(fakeKey+".rootfs_write_rate", "must not be negative, got %d", f.RootfsWriteRate.Bytes())
	}
	// Both are divisors (unmount cost = dirty / throughput) or caps whose
	// zero would make every write stall.
	if f.DirtyLimit <= 0 {
		add(fakeKey+".dirty_limit", "must be > 0, got %d", f.DirtyLimit.Bytes())
	}
	if f.DiskThroughput <= 0 {
		add(fakeKey+".disk_throughput", "must be > 0, got %d", f.DiskThroughput.Bytes())
	}
	validateDisk(f, add)
	validateCPU(f, add)
	addErr(fakeKey+".pod_cidr", checkPodCIDR(f.PodCIDR))
	// A line written into a CRI log file must be one line, or the
	// continuation would be parsed as a malformed log entry.
	for i, line := range f.LogLines {
		if strings.ContainsAny(line, "\r\n") {
			add(fmt.Sprintf("%s.log_lines[%d]", fakeKey, i), "must not contain a newline, got %q", line)
		}
	}
	if m := f.ExecSync.Mode; m != "" && m != ExecSyncModel && m != ExecSyncCanned {
		add(fakeKey+".exec_sync.mode", "must be %q or %q, got %q", ExecSyncModel, ExecSyncCanned, m)
	}
	if f.StopGrace < 0 {
		add(fakeKey+".stop_grace", "must not be negative, got %s", f.StopGrace)
	}
	if f.AdminAddress != "" {
		addErr(fakeKey+".admin_address", checkSocketPath(f.AdminAddress))
	}
	for i, name := range f.Fixes {
		if _, err := faults.ParseFix(name); err != nil {
			add(fmt.Sprintf("%s.fixes[%d]", fakeKey, i), "%v", err)
		}
	}
	for i, fc := range f.Faults {
		key := fmt.Sprintf("%s.faults[%d]", fakeKey, i)
		addErr(key+".point", faults.ValidatePoint(fc.Point))
		if _, err := faults.ParseSelector(fc.Target); err != nil {
			add(key+".target", "%v", err)
		}
		if _, err := faults.ParseSpec(fc.Spec); err != nil {
			add(key+".spec", "%v", err)
		}
	}
	return errs
}

func isLogLevel(level string) bool {
	switch level {
	case "trace", "debug", "info", "warn", "warning", "error", "fatal", "panic":
		return true
	}
	return false
}

// checkDir checks root and state. Absolute paths are required because a
// relative one would depend on the directory the server was started from.
func checkDir(dir string) error {
	if dir == "" {
		return errors.New("must be set")
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("must be an absolute path, got %q", dir)
	}
	return nil
}

// checkGRPCAddress checks the CRI socket path. containerd takes a plain path
// here; a "unix://" prefix (kubelet's spelling) would become part of the
// file name, so it is refused with a hint instead.
func checkGRPCAddress(addr string) error {
	if addr == "" {
		return errors.New("must be set")
	}
	if strings.Contains(addr, "://") {
		return fmt.Errorf("must be a plain absolute socket path without a scheme (containerd takes no \"unix://\" here), got %q", addr)
	}
	return checkSocketPath(addr)
}

func checkSocketPath(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("socket path must be absolute, got %q", path)
	}
	if len(path) > maxSocketPath {
		return fmt.Errorf("socket path is %d bytes, longer than the %d Linux allows: %q", len(path), maxSocketPath, path)
	}
	return nil
}

// CheckListenAddress is the check of debug.address and metrics.address,
// for flags that override them (--debug-address, --metrics-address) and
// for the server, which checks again before it listens.
func CheckListenAddress(addr string) error { return checkListenAddress(addr) }

// checkListenAddress checks debug.address and metrics.address. Only unix
// sockets and loopback TCP are allowed: the debug endpoint serves pprof and
// a fake runtime must never be reachable from the network.
func checkListenAddress(addr string) error {
	if addr == "" {
		return nil
	}
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		return checkSocketPath(path)
	}
	if strings.HasPrefix(addr, "/") {
		return checkSocketPath(addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be a unix socket path (absolute, or unix:// + absolute) or a loopback host:port, got %q", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port must be a number from 0 to 65535, got %q in %q", port, addr)
	}
	if !isLoopback(host) {
		return fmt.Errorf("host %q in %q is not loopback: only unix sockets and 127.0.0.0/8, ::1 or localhost are allowed, so the endpoint is never reachable from the network", host, addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckStreamAddress checks stream_server_address: loopback only.
// containerd's "" (the node's default-route address) is refused too.
func CheckStreamAddress(addr string) error {
	if !isLoopback(addr) {
		return fmt.Errorf("must be a loopback address (127.0.0.0/8, ::1 or localhost) so the streams are never reachable from the network, got %q", addr)
	}
	return nil
}

// validateStreaming checks the streaming server's keys: containerd's own
// checks (the idle timeout parses, getStreamListenerMode's key pair rules)
// and the fake's (the address is loopback).
func validateStreaming(cri CRIConfig, add func(field, format string, args ...any)) {
	if err := CheckStreamAddress(cri.StreamServerAddress); err != nil {
		add(criKey+".stream_server_address", "%v", err)
	}
	if _, err := strconv.ParseUint(cri.StreamServerPort, 10, 16); err != nil {
		add(criKey+".stream_server_port", "must be a port number from 0 to 65535 (0: any free port), got %q", cri.StreamServerPort)
	}
	if d := cri.StreamIdleTimeout; d != "" {
		if _, err := time.ParseDuration(d); err != nil {
			add(criKey+".stream_idle_timeout", "invalid stream idle timeout: %v", err)
		}
	}
	kp, key := cri.X509KeyPairStreaming, criKey+".x509_key_pair_streaming"
	switch {
	case cri.EnableTLSStreaming && kp.TLSCertFile != "" && kp.TLSKeyFile == "":
		add(key+".tls_key_file", "must be set with tls_cert_file")
	case cri.EnableTLSStreaming && kp.TLSCertFile == "" && kp.TLSKeyFile != "":
		add(key+".tls_cert_file", "must be set with tls_key_file")
	case !cri.EnableTLSStreaming && kp.TLSCertFile != "":
		add(key+".tls_cert_file", "is set but enable_tls_streaming is not")
	case !cri.EnableTLSStreaming && kp.TLSKeyFile != "":
		add(key+".tls_key_file", "is set but enable_tls_streaming is not")
	}
}

// checkPodCIDR checks the pod IP range: IPv4, in canonical form, and at
// least a /24 so a node's worth of pods fits.
func checkPodCIDR(cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("must be an IPv4 CIDR such as 10.88.0.0/16, got %q", cidr)
	}
	if !p.Addr().Is4() {
		return fmt.Errorf("must be an IPv4 CIDR, got %q", cidr)
	}
	if p.Masked() != p {
		return fmt.Errorf("%q has host bits set; did you mean %q?", cidr, p.Masked().String())
	}
	if p.Bits() > 24 {
		return fmt.Errorf("%q is too small: the prefix length must be <= 24 (at least a /24)", cidr)
	}
	return nil
}

// validateDisk checks the node's disk layout: names that resolve, sizes
// that divide.
func validateDisk(f FakeConfig, add func(field, format string, args ...any)) {
	d, key := f.Disk, fakeKey+".disk"
	devices := map[string]bool{}
	for i, dev := range d.Devices {
		field := fmt.Sprintf("%s.devices[%d]", key, i)
		switch {
		case dev.Name == "":
			add(field+".name", "must be set")
		case devices[dev.Name]:
			add(field+".name", "device %q declared twice", dev.Name)
		}
		devices[dev.Name] = true
		if dev.Throughput <= 0 {
			add(field+".throughput", "must be > 0, got %d", dev.Throughput.Bytes())
		}
		if dev.Queue < 0 {
			add(field+".queue", "must not be negative, got %d", dev.Queue.Bytes())
		}
		if dev.SyncLatency < 0 || dev.SyncLatency.Never() {
			add(field+".sync_latency", "must be a non-negative duration, got %s", dev.SyncLatency)
		}
	}
	names := func(field, dev string, required bool) {
		switch {
		case dev == "" && required && len(d.Devices) > 0:
			add(key+"."+field, "must name a device when devices are declared")
		case dev != "" && len(d.Devices) == 0:
			add(key+"."+field, "names device %q but no devices are declared", dev)
		case dev != "" && !devices[dev]:
			add(key+"."+field, "no device %q declared", dev)
		}
	}
	names("root_device", d.RootDevice, true)
	names("rootfs_device", d.RootfsDevice, false)
	names("split_device", d.SplitDevice, false)
	if d.SplitDevice != "" && d.SplitDevice == d.RootDevice {
		add(key+".split_device", "%q holds containerd's root; split_disk needs a device of its own", d.SplitDevice)
	}
	for i, w := range d.Writers {
		field := fmt.Sprintf("%s.writers[%d]", key, i)
		if w.Device == "" {
			add(field+".device", "must be set")
		} else {
			names(fmt.Sprintf("writers[%d].device", i), w.Device, false)
		}
		if w.Rate < 0 {
			add(field+".rate", "must not be negative, got %d", w.Rate.Bytes())
		}
	}
	if d.Shared() && f.ShimMode == ShimModeProcess {
		add(key+".devices", "need shim_mode %q: a process-mode shim is another process and cannot share the node's page cache", ShimModeInProcess)
	}
}

// validateCPU checks the node's CPU model.
func validateCPU(f FakeConfig, add func(field, format string, args ...any)) {
	c, key := f.CPU, fakeKey+".cpu"
	if c.Cores < 0 {
		add(key+".cores", "must not be negative, got %d", c.Cores)
	}
	costs := c.Costs()
	names := make([]string, 0, len(costs))
	for name := range costs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if d := costs[name]; d < 0 || d.Never() {
			add(key+"."+name, "must be a non-negative duration, got %s", d)
		}
	}
	if f.ShimV1DeletedState && f.ShimMode == ShimModeProcess {
		add(fakeKey+".shim_v1_deleted_state", "needs shim_mode %q", ShimModeInProcess)
	}
	if c.Cores > 0 && f.ShimMode == ShimModeProcess {
		add(key+".cores", "needs shim_mode %q: a process-mode shim is another process and cannot share the node's run queue", ShimModeInProcess)
	}
}
