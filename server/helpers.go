package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/store"
	"github.com/fakecontainerd/fakecontainerd/store/truncindex"
)

const (
	// handleEventTimeout bounds each attempt at handling an exit, as in
	// containerd's events.go ("events that timeout will be requeued").
	handleEventTimeout = 10 * time.Second
	// unknownExitCode and unknownExitReason mark an exit nobody saw.
	unknownExitCode   = 255
	unknownExitReason = "Unknown"
	// Reasons reported for exited containers.
	completeExitReason = "Completed"
	errorExitReason    = "Error"
	errorStartReason   = "StartError"
	errorStartExitCode = 128
	// nameDelimiter joins the parts of sandbox and container names.
	nameDelimiter = "_"
	// containerMetadataExtension is where CRI metadata rides on a
	// containerd container record.
	containerMetadataExtension = "io.cri-containerd.container.metadata"
	sandboxMetadataExtension   = "io.cri-containerd.sandbox.metadata"
	// Spec annotations containerd's CRI plugin sets.
	annotationContainerType = "io.kubernetes.cri.container-type"
	annotationSandboxID     = "io.kubernetes.cri.sandbox-id"
	annotationContainerName = "io.kubernetes.cri.container-name"
	annotationImageName     = "io.kubernetes.cri.image-name"
	containerTypeSandbox    = "sandbox"
	containerTypeContainer  = "container"
)

// codeError is an error with a gRPC code and a plain message: wrapping it
// with %w keeps the code for toGRPC without the "rpc error: code = ..."
// text a status error would add to every message that wraps it.
type codeError struct {
	code codes.Code
	msg  string
}

func (e *codeError) Error() string              { return e.msg }
func (e *codeError) GRPCStatus() *status.Status { return status.New(e.code, e.msg) }

// errInvalid builds an InvalidArgument error.
func errInvalid(format string, args ...any) error {
	return &codeError{code: codes.InvalidArgument, msg: fmt.Sprintf(format, args...)}
}

// errNotFoundf is a NotFound error with a plain message.
func errNotFoundf(format string, args ...any) error {
	return &codeError{code: codes.NotFound, msg: fmt.Sprintf(format, args...)}
}

// errState is a refusal because of an object's state (running, exited,
// starting, removing). containerd builds these with fmt.Errorf, so
// errdefs.ToGRPC answers Unknown (measured by e2e/containerd); the fake
// answers the same, with the plain message a codeError keeps.
func errState(format string, args ...any) error {
	return &codeError{code: codes.Unknown, msg: fmt.Sprintf(format, args...)}
}

// toGRPC maps an error to a gRPC status, as containerd's errdefs.ToGRPC
// does at the edge of every CRI method: a status inside the chain keeps its
// code (with the full wrapped message); store sentinels and context errors
// map to their codes; everything else is Unknown.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var amb truncindex.ErrAmbiguousPrefix
	switch {
	case errors.As(err, &amb), errors.Is(err, truncindex.ErrEmptyPrefix), errors.Is(err, truncindex.ErrIllegalChar):
		return status.Error(codes.InvalidArgument, msg)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, truncindex.ErrNotExist):
		return status.Error(codes.NotFound, msg)
	case errors.Is(err, store.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, msg)
	}
	if st, ok := status.FromError(err); ok {
		return status.Error(st.Code(), msg)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, msg)
	}
	return status.Error(codes.Unknown, msg)
}

func isNotFound(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, truncindex.ErrNotExist) || status.Code(err) == codes.NotFound
}

// generateID makes a 64-hex id, like containerd's util.GenerateID.
func generateID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the kernel's RNG never fails
	}
	return hex.EncodeToString(b)
}

func makeSandboxName(m *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{m.Name, m.Namespace, m.Uid, fmt.Sprint(m.Attempt)}, nameDelimiter)
}

func makeContainerName(c *runtime.ContainerMetadata, s *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{c.Name, s.Name, s.Namespace, s.Uid, fmt.Sprint(c.Attempt)}, nameDelimiter)
}

func (c *criService) containerRootDir(id string) string {
	return filepath.Join(c.rootDir, "containers", id)
}

func (c *criService) sandboxRootDir(id string) string {
	return filepath.Join(c.rootDir, "sandboxes", id)
}

// nameRegistrar reserves names so two sandboxes or containers cannot share
// one, as containerd's registrar does.
type nameRegistrar struct {
	mu     sync.Mutex
	byName map[string]string
}

func newNameRegistrar() *nameRegistrar { return &nameRegistrar{byName: map[string]string{}} }

func (r *nameRegistrar) reserve(name, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if owner, ok := r.byName[name]; ok && owner != id {
		return reservedError{name: name, owner: owner}
	}
	r.byName[name] = id
	return nil
}

// reservedError is containerd's registrar text, with no ": already exists"
// after it; it still is store.ErrAlreadyExists, for its code.
type reservedError struct{ name, owner string }

func (e reservedError) Error() string {
	return fmt.Sprintf("name %q is reserved for %q", e.name, e.owner)
}

func (e reservedError) Unwrap() error { return store.ErrAlreadyExists }

func (r *nameRegistrar) release(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byName, name)
}

// ipAllocator hands out pod IPs from the pod CIDR, as a host-local IPAM
// would; a fake needs only uniqueness among live sandboxes. Each IP in use
// records its sandbox, so that a release by a sandbox that no longer holds
// the IP (a RemovePodSandbox after StopPodSandbox already gave it back and
// another pod got it) frees nothing.
type ipAllocator struct {
	mu     sync.Mutex
	prefix netip.Prefix
	used   map[netip.Addr]string // IP -> sandbox id
	next   netip.Addr
}

func newIPAllocator(cidr string) (*ipAllocator, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", cidr, err)
	}
	p = p.Masked()
	return &ipAllocator{prefix: p, used: map[netip.Addr]string{}, next: p.Addr().Next().Next()}, nil
}

func (a *ipAllocator) allocate(owner string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	size := 1 << (a.prefix.Addr().BitLen() - a.prefix.Bits())
	for i := 0; i < size; i++ {
		ip := a.next
		a.next = a.next.Next()
		if !a.prefix.Contains(a.next) {
			a.next = a.prefix.Addr().Next().Next()
		}
		if _, inUse := a.used[ip]; inUse || !a.prefix.Contains(ip) || isBroadcast(a.prefix, ip) {
			continue
		}
		a.used[ip] = owner
		return ip.String(), nil
	}
	return "", fmt.Errorf("no free IP left in pod CIDR %s", a.prefix)
}

func isBroadcast(p netip.Prefix, ip netip.Addr) bool {
	if !ip.Is4() {
		return false
	}
	b := ip.As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	return binary.BigEndian.Uint32(b[:])&host == host
}

func (a *ipAllocator) reserve(ip, owner string) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return
	}
	a.mu.Lock()
	a.used[addr] = owner
	a.mu.Unlock()
}

// release frees ip if owner still holds it.
func (a *ipAllocator) release(ip, owner string) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return
	}
	a.mu.Lock()
	if a.used[addr] == owner {
		delete(a.used, addr)
	}
	a.mu.Unlock()
}

// matchLabels is the CRI label selector: every selector pair must match.
func matchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// replace swaps in another allocator's range, keeping the IPs in use.
func (a *ipAllocator) replace(other *ipAllocator) {
	other.mu.Lock()
	prefix, next, used := other.prefix, other.next, other.used
	other.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, owner := range a.used {
		used[ip] = owner
	}
	a.prefix, a.next, a.used = prefix, next, used
}

// deferCleanupTimeout bounds cleanup done after a failure, as containerd's
// ctrdutil.DeferContext.
const deferCleanupTimeout = time.Minute

// Limits on what a caller may attach to an object, so a request cannot
// make the server hold or persist unbounded data.
const (
	maxKeyLength       = 1024
	maxLabelBytesTotal = 256 << 10
)

func validateLabelsAndAnnotations(maps ...map[string]string) error {
	total := 0
	for _, m := range maps {
		for k, v := range m {
			if k == "" || len(k) > maxKeyLength {
				return errInvalid("label or annotation key %.64q: must be 1 to %d bytes", k, maxKeyLength)
			}
			total += len(k) + len(v)
		}
	}
	if total > maxLabelBytesTotal {
		return errInvalid("labels and annotations take %d bytes, more than the %d allowed", total, maxLabelBytesTotal)
	}
	return nil
}

// validateNamePart refuses names that could not be a Kubernetes name part
// and could escape a path if ever used in one.
func validateNamePart(field, v string) error {
	if len(v) > 253 {
		return errInvalid("%s: longer than 253 bytes", field)
	}
	if strings.ContainsAny(v, "/\\\x00") || v == "." || v == ".." {
		return errInvalid("%s %q: must not contain path separators", field, v)
	}
	return nil
}

func protojsonMarshal(m proto.Message) ([]byte, error) { return protojson.Marshal(m) }
