package server

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// ListContainers is containerd's: copy the store, then take every
// container's status read lock in turn, with no timeout, and only then
// filter. One container whose write lock is held stalls the whole list,
// and the handler keeps waiting after the caller has given up; a pod's
// filtered list (kubelet's, by pod UID label) waits on every other pod's
// containers too.
func (c *criService) ListContainers(ctx context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	listed, examined := c.listContainers(r.GetFilter())
	// Every status read and every entry built costs containerd CPU.
	if err := c.onCPU(ctx, "ListContainers", c.listCost(examined)); err != nil {
		return nil, err
	}
	if encodeList(ctx) {
		return encodeListed(listed)
	}
	containers := make([]*runtime.Container, len(listed))
	for i, l := range listed {
		containers[i] = l.toCRI()
	}
	return &runtime.ListContainersResponse{Containers: containers}, nil
}

// listedContainer is a container and what its status said when listed.
type listedContainer struct {
	cntr      containerstore.Container
	state     runtime.ContainerState
	createdAt int64
	// noImageID is containerd 2.x's list, which leaves image_id empty.
	noImageID bool
}

// listContainers is ListContainers up to the response: every candidate's
// status read under its read lock, then the filter.
func (c *criService) listContainers(f *runtime.ContainerFilter) ([]listedContainer, int) {
	start := c.clock.Now()
	ids := c.resolveFilterIDs(f)
	var candidates []containerstore.Container
	if c.toggles.Enabled(faults.FixListIndex) {
		// The fix: the filter picks the candidates through the store's
		// indexes, and only their statuses are read.
		candidates = c.indexedCandidates(f, ids)
	} else {
		candidates = c.containerStore.List()
	}
	// Timing logs cost two clock reads per container: only when they can
	// be written.
	timed := c.log.Logger.IsLevelEnabled(logrus.DebugLevel)
	listed := make([]listedContainer, 0, len(candidates))
	for _, cntr := range candidates {
		var getStart time.Time
		if timed {
			getStart = c.clock.Now()
		}
		// Only the state and the creation time are read, but under the
		// same read lock containerd's Get takes.
		state, createdAt := cntr.Status.Brief()
		listed = append(listed, listedContainer{cntr: cntr, state: state, createdAt: createdAt, noImageID: c.containerdV2()})
		if timed {
			c.timing("ListContainers", cntr.ID, c.clock.Since(getStart), "[ListContainers] get container %s status", cntr.ID)
		}
	}
	examined := len(listed)
	listed = filterContainers(listed, f, ids)
	c.timing("ListContainers", "", c.clock.Since(start), "[ListContainers] all list containers")
	return listed, examined
}

// toCRI shares the config's messages and maps rather than copying them: a
// container's config never changes after CreateContainer, and marshalling
// a message concurrently is safe as long as nobody changes it.
func (l listedContainer) toCRI() *runtime.Container {
	ct := staticCRI(l.cntr, l.noImageID)
	ct.State, ct.CreatedAt = l.state, l.createdAt
	return ct
}

// indexedCandidates is the list_index fix: the containers a filter can
// match, found through the id index, the sandbox index or the pod UID
// label index, in that order. filterContainers still applies the whole
// filter to them, so the result is the scan's; an id that resolves to
// nothing is left to the scan's semantics by listing everything.
func (c *criService) indexedCandidates(f *runtime.ContainerFilter, ids filterIDs) []containerstore.Container {
	switch {
	case ids.id != "":
		if cntr, err := c.containerStore.Get(ids.id); err == nil {
			return []containerstore.Container{cntr}
		}
	case ids.sandboxID != "":
		return c.containerStore.ListBySandbox(ids.sandboxID)
	default:
		if uid, ok := f.GetLabelSelector()[containerstore.PodUIDLabel]; ok {
			return c.containerStore.ListByPodUID(uid)
		}
	}
	return c.containerStore.List()
}

// filterIDs are a filter's container and sandbox ids with short ids
// resolved, as containerd's normalizeContainerFilter does: an id that
// resolves to no single object is kept as given, and so matches nothing.
type filterIDs struct{ id, sandboxID string }

func (c *criService) resolveFilterIDs(f *runtime.ContainerFilter) filterIDs {
	ids := filterIDs{id: f.GetId(), sandboxID: c.resolveSandboxID(f.GetPodSandboxId())}
	if ids.id != "" {
		if cntr, err := c.containerStore.Get(ids.id); err == nil {
			ids.id = cntr.ID
		}
	}
	return ids
}

// resolveSandboxID is a sandbox id or unique prefix resolved to the full
// id; anything else is returned as given.
func (c *criService) resolveSandboxID(id string) string {
	if id != "" {
		if sb, err := c.sandboxStore.Get(id); err == nil {
			return sb.ID
		}
	}
	return id
}

// filterContainers applies the filter, its ids resolved (resolveFilterIDs).
func filterContainers(listed []listedContainer, f *runtime.ContainerFilter, ids filterIDs) []listedContainer {
	if f == nil {
		return listed
	}
	out := listed[:0]
	for _, l := range listed {
		if ids.id != "" && l.cntr.ID != ids.id {
			continue
		}
		if ids.sandboxID != "" && l.cntr.SandboxID != ids.sandboxID {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != l.state {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), l.cntr.Config.GetLabels()) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// encodeListKey marks the context of a ListContainers whose response goes
// straight to the wire (encodedLists).
type encodeListKey struct{}

func withEncodedList(ctx context.Context) context.Context {
	return context.WithValue(ctx, encodeListKey{}, true)
}

func encodeList(ctx context.Context) bool { return ctx.Value(encodeListKey{}) != nil }

// encodeListed is ListContainers' response as the gRPC server sends it
// (encodedLists): the same list, after the same locks, but written from
// each container's cached encoding of its immutable fields plus its state
// and creation time, instead of marshalling every container's labels and
// annotations again on every call (the bulk of a big list's cost on the
// server). The bytes ride as the response's unknown fields, which protobuf
// sends as they are; the client decodes an ordinary ListContainersResponse.
func encodeListed(listed []listedContainer) (*runtime.ListContainersResponse, error) {
	statics := make([][]byte, len(listed))
	size := 0
	for i, l := range listed {
		s := l.cntr.Encoded(func() []byte { return encodeStatic(l.cntr, l.noImageID) })
		if s == nil {
			// Not encodable (proto.Marshal refused it): say why.
			_, err := proto.Marshal(staticCRI(l.cntr, l.noImageID))
			return nil, fmt.Errorf("failed to encode container %q: %w", l.cntr.ID, err)
		}
		statics[i] = s
		size += 10 + len(s) + 2*(1+protowire.SizeVarint(1<<63))
	}
	// The buffer comes from gRPC's pool and goes back to it once sent
	// (listCodec): a 10,000-container list is 7.6 MB, and as garbage on
	// every call it made the collector, which scans every goroutine's stack
	// (three per task), the list's biggest cost.
	buf := mem.DefaultBufferPool().Get(size)
	b := (*buf)[:0]
	for i, l := range listed {
		s := statics[i]
		n := len(s)
		if l.state != 0 {
			n += protowire.SizeTag(containerStateField) + protowire.SizeVarint(uint64(l.state))
		}
		if l.createdAt != 0 {
			n += protowire.SizeTag(containerCreatedAtField) + protowire.SizeVarint(uint64(l.createdAt))
		}
		b = protowire.AppendTag(b, listContainersField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = append(b, s...)
		if l.state != 0 {
			b = protowire.AppendTag(b, containerStateField, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(l.state))
		}
		if l.createdAt != 0 {
			b = protowire.AppendTag(b, containerCreatedAtField, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(l.createdAt))
		}
	}
	resp := &runtime.ListContainersResponse{}
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
	return resp, nil
}

// listCodec is the gRPC server's codec: the proto codec, except that a
// ListContainersResponse written by encodeListed is sent as its bytes,
// without another copy, and its buffer goes back to the pool once written.
// The response lets go of the bytes first, so nothing else can see the
// buffer after it is reused.
type listCodec struct{ proto encoding.CodecV2 }

func newListCodec() listCodec { return listCodec{proto: encoding.GetCodecV2(protoenc.Name)} }

func (listCodec) Name() string { return protoenc.Name }

func (c listCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*runtime.ListContainersResponse); ok && len(r.Containers) == 0 {
		if b := []byte(r.ProtoReflect().GetUnknown()); len(b) > 0 {
			r.ProtoReflect().SetUnknown(nil)
			return mem.BufferSlice{mem.NewBuffer(&b, mem.DefaultBufferPool())}, nil
		}
	}
	return c.proto.Marshal(v)
}

func (c listCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Field numbers of what listContainersEncoded writes itself.
var (
	listContainersField     = fieldNumber(&runtime.ListContainersResponse{}, "containers")
	containerStateField     = fieldNumber(&runtime.Container{}, "state")
	containerCreatedAtField = fieldNumber(&runtime.Container{}, "created_at")
)

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	return m.ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

// staticCRI is the CRI Container of a container without its status.
// containerd 2.2.7 leaves image_id empty (noImageID); the 1.6 model
// fills it (README, deliberate differences).
func staticCRI(cntr containerstore.Container, noImageID bool) *runtime.Container {
	ct := &runtime.Container{
		Id:           cntr.ID,
		PodSandboxId: cntr.SandboxID,
		Metadata:     cntr.Config.GetMetadata(),
		Image:        cntr.Config.GetImage(),
		ImageRef:     cntr.ImageRef,
		ImageId:      cntr.ImageRef,
		Labels:       cntr.Config.GetLabels(),
		Annotations:  cntr.Config.GetAnnotations(),
	}
	if noImageID {
		ct.ImageId = ""
	}
	return ct
}

// encodeStatic is staticCRI's wire encoding (map entries in key order), or
// nil if it cannot be encoded.
func encodeStatic(cntr containerstore.Container, noImageID bool) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(staticCRI(cntr, noImageID))
	if err != nil {
		return nil
	}
	return b
}
