package server

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// PodSandboxStatus reads the sandbox's own status lock only: it never
// waits on a container's, which is why ListPodSandbox stayed fast in the
// field while ListContainers stalled.
func (c *criService) PodSandboxStatus(ctx context.Context, r *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errInvalid("pod_sandbox_id must not be empty")
	}
	sb, err := c.sandboxStore.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("an error occurred when try to find sandbox: %w", err)
	}
	status := sb.Status.Get()
	resp := &runtime.PodSandboxStatusResponse{Status: toCRISandboxStatus(sb.Metadata, status)}
	if r.GetVerbose() {
		info, err := json.Marshal(map[string]any{
			"pid": status.Pid, "processStatus": status.State.String(), "netNamespacePath": sb.NetNSPath,
			"runtimeHandler": sb.RuntimeHandler, "runtimeType": "io.containerd.runc.v2",
			"config": json.RawMessage(mustProtoJSON(sb.Config)),
		})
		if err != nil {
			return nil, fmt.Errorf("failed to marshal info for sandbox %q: %w", sb.ID, err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func toCRISandboxState(s sandboxstore.State) runtime.PodSandboxState {
	if s == sandboxstore.StateReady {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

func toCRISandboxStatus(md sandboxstore.Metadata, status sandboxstore.Status) *runtime.PodSandboxStatus {
	config := md.Config
	st := &runtime.PodSandboxStatus{
		Id:             md.ID,
		Metadata:       proto.Clone(config.GetMetadata()).(*runtime.PodSandboxMetadata),
		State:          toCRISandboxState(status.State),
		CreatedAt:      status.CreatedAt.UnixNano(),
		Network:        &runtime.PodSandboxNetworkStatus{},
		Labels:         config.GetLabels(),
		Annotations:    config.GetAnnotations(),
		RuntimeHandler: md.RuntimeHandler,
	}
	// The IP is reported while the network is up, as containerd does.
	if status.State == sandboxstore.StateReady {
		st.Network.Ip = md.IP
	}
	// Echo the namespace options: kubelet recreates a sandbox whose
	// reported options differ from what it asked for.
	nsOpts := config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if nsOpts != nil {
		nsOpts = proto.Clone(nsOpts).(*runtime.NamespaceOption)
	} else {
		nsOpts = &runtime.NamespaceOption{}
	}
	st.Linux = &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{Options: nsOpts}}
	return st
}

func mustProtoJSON(m proto.Message) []byte {
	data, err := protojsonMarshal(m)
	if err != nil {
		return []byte("null")
	}
	return data
}
