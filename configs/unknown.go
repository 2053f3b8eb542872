package configs

import (
	"encoding"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// UnknownKey is a key of a config file that neither containerd nor the
// fake knows: most likely a typo (SystemdCgrup, sandbox_imgae), which
// would otherwise quietly leave the default in place.
type UnknownKey struct {
	// Key is the dotted key, up to and including the part nobody knows.
	Key string
	// Suggestion is the known key at that level closest to it, as a whole
	// dotted key, or "" when none is close.
	Suggestion string
}

// keyNode is one level of the keys containerd 1.6.20 and the fake know.
type keyNode struct {
	fields map[string]*keyNode
	// each is the value of every key of a map (runtimes.<name>).
	each *keyNode
	// opaque: everything below is accepted without a check (the tables of
	// containerd plugins the fake does not model, free-form maps).
	opaque bool
	// runcOptions marks a runtime's options table, checked against runc's
	// option names only when the runtime is runc.
	runcOptions bool
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// keysOf is the key tree of a config type, from its toml tags.
func keysOf(t reflect.Type) *keyNode {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return &keyNode{}
	}
	switch t.Kind() {
	case reflect.Struct:
		n := &keyNode{fields: map[string]*keyNode{}}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			n.fields[name] = keysOf(f.Type)
		}
		return n
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return &keyNode{opaque: true}
		}
		return &keyNode{each: keysOf(t.Elem())}
	case reflect.Slice, reflect.Array:
		if e := t.Elem(); e.Kind() == reflect.Struct || e.Kind() == reflect.Map {
			return keysOf(e)
		}
	}
	return &keyNode{}
}

// merge adds b's keys to a (a's nodes win where both have one).
func merge(a, b *keyNode) *keyNode {
	if a.each != nil && b.each != nil {
		merge(a.each, b.each)
	}
	if a.fields == nil {
		return a
	}
	for k, v := range b.fields {
		if have, ok := a.fields[k]; ok {
			merge(have, v)
		} else {
			a.fields[k] = v
		}
	}
	return a
}

// containerdServerKeys are containerd 1.6.20's server config
// (services/server/config) keys beside the plugins.
type containerdServerKeys struct {
	Version   int    `toml:"version"`
	Root      string `toml:"root"`
	State     string `toml:"state"`
	TempDir   string `toml:"temp"`
	PluginDir string `toml:"plugin_dir"`
	GRPC      struct {
		Address        string `toml:"address"`
		TCPAddress     string `toml:"tcp_address"`
		TCPTLSCA       string `toml:"tcp_tls_ca"`
		TCPTLSCert     string `toml:"tcp_tls_cert"`
		TCPTLSKey      string `toml:"tcp_tls_key"`
		UID            int    `toml:"uid"`
		GID            int    `toml:"gid"`
		MaxRecvMsgSize int    `toml:"max_recv_message_size"`
		MaxSendMsgSize int    `toml:"max_send_message_size"`
	} `toml:"grpc"`
	TTRPC struct {
		Address string `toml:"address"`
		UID     int    `toml:"uid"`
		GID     int    `toml:"gid"`
	} `toml:"ttrpc"`
	Debug struct {
		Address string `toml:"address"`
		UID     int    `toml:"uid"`
		GID     int    `toml:"gid"`
		Level   string `toml:"level"`
		Format  string `toml:"format"`
	} `toml:"debug"`
	Metrics struct {
		Address       string `toml:"address"`
		GRPCHistogram bool   `toml:"grpc_histogram"`
	} `toml:"metrics"`
	DisabledPlugins []string `toml:"disabled_plugins"`
	RequiredPlugins []string `toml:"required_plugins"`
	OOMScore        int      `toml:"oom_score"`
	Cgroup          struct {
		Path string `toml:"path"`
	} `toml:"cgroup"`
	ProxyPlugins map[string]struct {
		Type    string `toml:"type"`
		Address string `toml:"address"`
		// 1.7's additions.
		Platform     string            `toml:"platform"`
		Exports      map[string]string `toml:"exports"`
		Capabilities []string          `toml:"capabilities"`
	} `toml:"proxy_plugins"`
	Timeouts         map[string]string `toml:"timeouts"`
	Imports          []string          `toml:"imports"`
	StreamProcessors map[string]struct {
		Accepts []string `toml:"accepts"`
		Returns string   `toml:"returns"`
		Path    string   `toml:"path"`
		Args    []string `toml:"args"`
		Env     []string `toml:"env"`
	} `toml:"stream_processors"`
}

// cri17Keys are the CRI plugin keys containerd 1.7 added (v1.7.34's
// pkg/cri/config): a node's 1.7 config.toml has them, and they are
// containerd's, not typos.
type cri17Keys struct {
	Containerd struct {
		IgnoreBlockIONotEnabledErrors bool                     `toml:"ignore_blockio_not_enabled_errors"`
		Runtimes                      map[string]runtime17Keys `toml:"runtimes"`
		DefaultRuntime                runtime17Keys            `toml:"default_runtime"`
		UntrustedWorkloadRuntime      runtime17Keys            `toml:"untrusted_workload_runtime"`
	} `toml:"containerd"`
	CNI struct {
		SetupSerially bool `toml:"setup_serially"`
	} `toml:"cni"`
	EnableCDI                 bool     `toml:"enable_cdi"`
	CDISpecDirs               []string `toml:"cdi_spec_dirs"`
	ImagePullProgressTimeout  string   `toml:"image_pull_progress_timeout"`
	DrainExecSyncIOTimeout    string   `toml:"drain_exec_sync_io_timeout"`
	ImagePullWithSyncFs       bool     `toml:"image_pull_with_sync_fs"`
	IgnoreDeprecationWarnings []string `toml:"ignore_deprecation_warnings"`
}

type runtime17Keys struct {
	AllDevicesAllowed bool   `toml:"privileged_without_host_devices_all_devices_allowed"`
	Snapshotter       string `toml:"snapshotter"`
	SandboxMode       string `toml:"sandbox_mode"`
}

// overlayKeys are the overlayfs snapshotter's keys (mount_options since
// containerd 1.6.24 / 1.7.4).
type overlayKeys struct {
	RootPath      string   `toml:"root_path"`
	UpperdirLabel bool     `toml:"upperdir_label"`
	SyncRemove    bool     `toml:"sync_remove"`
	SlowChown     bool     `toml:"slow_chown"`
	MountOptions  []string `toml:"mount_options"`
}

// otherPlugins are the IDs of containerd's plugins with a config table
// (1.6's `containerd config default`, and 1.7's additions) that the fake
// does not model: their keys are containerd's and not checked here.
var otherPlugins = []string{
	"io.containerd.gc.v1.scheduler",
	"io.containerd.internal.v1.opt",
	"io.containerd.internal.v1.restart",
	"io.containerd.internal.v1.tracing",
	"io.containerd.metadata.v1.bolt",
	"io.containerd.monitor.v1.cgroups",
	"io.containerd.nri.v1.nri",
	"io.containerd.runtime.v1.linux",
	"io.containerd.runtime.v2.task",
	"io.containerd.service.v1.diff-service",
	"io.containerd.service.v1.tasks-service",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.blockfile",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.native",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.transfer.v1.local",
}

// knownKeys is the tree of every key containerd 1.6.20 or the fake knows.
func knownKeys() *keyNode {
	root := merge(keysOf(reflect.TypeFor[Config]()), keysOf(reflect.TypeFor[containerdServerKeys]()))
	plugins := &keyNode{fields: map[string]*keyNode{
		criPluginID:                              merge(merge(keysOf(reflect.TypeFor[criPluginConfig]()), keysOf(reflect.TypeFor[CRIConfig]())), keysOf(reflect.TypeFor[cri17Keys]())),
		"io.containerd.snapshotter.v1.overlayfs": keysOf(reflect.TypeFor[overlayKeys]()),
		"io.fakecontainerd.v1":                   keysOf(reflect.TypeFor[FakeConfig]()),
	}}
	for _, id := range otherPlugins {
		plugins.fields[id] = &keyNode{opaque: true}
	}
	root.fields["plugins"] = plugins
	cri := plugins.fields[criPluginID].fields["containerd"]
	runcOpts := &keyNode{fields: map[string]*keyNode{}, runcOptions: true}
	for _, k := range runcOptionKeys {
		runcOpts.fields[k] = &keyNode{}
	}
	for _, rt := range []*keyNode{cri.fields["runtimes"].each, cri.fields["default_runtime"], cri.fields["untrusted_workload_runtime"]} {
		rt.fields["options"] = runcOpts
	}
	return root
}

// runcTypes are the runtime types whose options are runc's.
var runcTypes = []string{"io.containerd.runc.v2", "io.containerd.runc.v1", "io.containerd.runtime.v1.linux", ""}

// unknownKeys finds, among the undecoded keys of a file, those nobody
// knows. keys are leaves (undecodedLeaves); several under one unknown
// table give one entry.
func unknownKeys(keys []toml.Key, cfg *Config) []UnknownKey {
	root := knownKeys()
	var out []UnknownKey
	seen := map[string]bool{}
	for _, k := range keys {
		n := root
		for i, part := range k {
			if n.opaque {
				break
			}
			if n.runcOptions && i >= 1 {
				// k[i-2] is the runtime's name under runtimes.
				if i >= 2 && !slices.Contains(runcTypes, cfg.Plugins.CRI.Containerd.Runtimes[k[i-2]].RuntimeType) {
					break
				}
			}
			if n.each != nil {
				n = n.each
				continue
			}
			child, ok := n.fields[part]
			if ok {
				n = child
				continue
			}
			if n.fields == nil {
				break // a leaf with a value of its own, such as an inline table
			}
			bad := k[:i+1].String()
			if !seen[bad] {
				seen[bad] = true
				u := UnknownKey{Key: bad}
				if s := closest(part, keysAt(n)); s != "" {
					u.Suggestion = append(toml.Key(slices.Clone(k[:i])), s).String()
				}
				out = append(out, u)
			}
			break
		}
	}
	return out
}

func keysAt(n *keyNode) []string {
	out := make([]string, 0, len(n.fields))
	for k := range n.fields {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// closest is the candidate nearest to s by edit distance (ignoring case),
// if it is near enough to be a typo of it: at most 2 edits, or a quarter
// of its length for long keys.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/4) {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of neighbours each cost 1.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
