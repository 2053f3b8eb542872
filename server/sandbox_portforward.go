package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// PortForward prepares a streaming endpoint to forward a port of a pod
// sandbox and returns its URL (containerd's sandbox_portforward.go).
func (c *criService) PortForward(ctx context.Context, r *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errInvalid("pod_sandbox_id must not be empty")
	}
	sb, err := c.sandboxStore.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("failed to find sandbox %q: %w", r.GetPodSandboxId(), err)
	}
	if sb.Status.Get().State != sandboxstore.StateReady {
		return nil, errState("sandbox container is not running")
	}
	return c.streamServer.GetPortForward(r)
}

// portForward is containerd's sandbox_portforward_linux.go: in the pod's
// network namespace (the host's for a host-network pod) it dials
// localhost:port, IPv4 then IPv6, and copies both ways. The fake's pods
// have no network namespace and nothing in the process model listens, so
// the dial in the pod's namespace finds the port closed, as it would on a
// node where the container does not listen: "connection refused" from both
// families, with containerd's wording. No real socket is opened: dialling
// the host's localhost would reach the node's own services, which a pod's
// namespace does not (README, Deliberate differences).
func (c *criService) portForward(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	sb, err := c.sandboxStore.Get(id)
	if err != nil {
		return fmt.Errorf("failed to find sandbox %q in store: %w", id, err)
	}
	netNSPath := sb.NetNSPath
	if sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE {
		netNSPath = "host"
	}
	c.log.WithField("sandbox", sb.ID).Infof("Executing port forwarding in network namespace %q", netNSPath)
	errV4 := dialPodPort("tcp4", net.IPv4(127, 0, 0, 1), port)
	errV6 := dialPodPort("tcp6", net.IPv6loopback, port)
	err = fmt.Errorf("failed to connect to localhost:%d inside namespace %q, IPv4: %v IPv6 %v ", port, sb.ID, errV4, errV6)
	return fmt.Errorf("failed to execute portforward in network namespace %q: %w", netNSPath, err)
}

// dialPodPort is a dial to a port of the pod's loopback: no fake process
// listens, so it is refused as connect(2) refuses a closed port.
func dialPodPort(network string, ip net.IP, port int32) error {
	return &net.OpError{Op: "dial", Net: network, Addr: &net.TCPAddr{IP: ip, Port: int(port)},
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}
