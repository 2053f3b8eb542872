package server

import (
	"context"
	"encoding/json"
	"fmt"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
)

// The config's containerd_version picks, where containerd's release lines
// differ in what a CRI client or an incident sees, the line's code path.
// The README's fidelity section has the table, with the upstream files.

// modelledRelease is the containerd release each line was measured
// against or read from.
var modelledRelease = map[string]string{
	configs.ContainerdV16: "v1.6.20",
	configs.ContainerdV17: "v1.7.30",
	configs.ContainerdV2:  "v2.2.7",
}

// containerdV2 reports whether the fake behaves as containerd 2.x.
func (c *criService) containerdV2() bool {
	return c.config.Plugins.Fake.ContainerdVersion == configs.ContainerdV2
}

// runtimeVersion is Version's runtime_version: the fake's own build, and
// for 1.7 and 2.x the containerd release it models as semver build
// metadata ("dev+containerd.v2.2.7"); 1.6, the default, keeps the plain
// build version it always answered.
func (c *criService) runtimeVersion() string {
	v := c.config.Plugins.Fake.ContainerdVersion
	if v == configs.ContainerdV16 || v == "" {
		return Version
	}
	return Version + "+containerd." + modelledRelease[v]
}

// containerdHasNoDeprecationWarnings is the RuntimeCondition containerd
// 2.x appends to Status (internal/cri/server/status.go,
// runtimeConditionContainerdHasNoDeprecationWarnings), type and reason as
// internal/cri/server/service.go names them. Of containerd's warnings
// (pkg/deprecation) the fake's config can give rise to none; the one a
// node gives is cgroup v1, which containerd 2.2 warns about when its
// task manager starts (core/runtime/v2/task_manager_linux.go) on a host
// whose /sys/fs/cgroup is not cgroup2: the same test here.
func containerdHasNoDeprecationWarnings(cgroupV2 bool) (*runtime.RuntimeCondition, error) {
	cond := &runtime.RuntimeCondition{Type: "ContainerdHasNoDeprecationWarnings", Status: true}
	if cgroupV2 {
		return cond, nil
	}
	msg, err := json.Marshal(map[string]string{
		"io.containerd.deprecation/cgroup-v1": "The support for cgroup v1 is deprecated since containerd v2.2 and will be removed by no later than May 2029. Upgrade the host to use cgroup v2.",
	})
	if err != nil {
		return nil, fmt.Errorf("failed to marshal deprecation warnings: %w", err)
	}
	cond.Status = false
	cond.Reason = "ContainerdHasDeprecationWarnings"
	cond.Message = string(msg)
	return cond, nil
}

// hostCgroupV2 is containerd's cgroups.Mode() == Unified: /sys/fs/cgroup
// is a cgroup2 mount.
func hostCgroupV2() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

// nriContainer is what containerd 2.x's NRI adaptation does to describe a
// container before every NRI hook (internal/cri/nri/nri_api_linux.go,
// nriContainer), with no NRI plugin connected too: the container's record
// (Info and Spec, one metadata read here) and its task (the tasks service's
// Get: the shim's State under the 2 s cap), on a context of its own
// (ctrdutil.NamespacedContext, no deadline). Failures are logged and
// ignored, as there. Behind a shim stuck in Delete, the State costs its
// 2 s. 1.7 has the same code but NRI off by default.
func (c *criService) nriContainer(id string) {
	ctx := context.Background()
	if _, err := c.db.GetContainer(ctx, id); err != nil {
		c.log.WithError(err).WithField("id", id).Errorf("failed to get info for container %s", id)
	}
	if _, err := c.shims.Get(ctx, id); err != nil && !isNotFound(err) {
		c.log.WithError(err).WithField("id", id).Errorf("failed to get task for container %s", id)
	}
}

// protoText is a message as containerd 2.x's %+v prints it: protobuf-go's
// String(), the text form (whose spacing protobuf-go varies on purpose),
// and "<nil>" for a nil message.
func protoText(m proto.Message) string {
	if m == nil || !m.ProtoReflect().IsValid() {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", m)
}
