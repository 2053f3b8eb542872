package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/faults/clock/deadline"
	"github.com/fakecontainerd/fakecontainerd/store/disk"
)

// Event topics, as runc.GetTopic names them.
const (
	TopicTaskCreate = "/tasks/create"
	TopicTaskStart  = "/tasks/start"
	TopicTaskExit   = "/tasks/exit"
	TopicTaskDelete = "/tasks/delete"
)

// Publisher sends shim events to the daemon.
type Publisher interface {
	Publish(ctx context.Context, topic string, event proto.Message)
}

// ServiceConfig configures one shim's task service.
type ServiceConfig struct {
	// Group is the shim's grouping id: the sandbox id, as the runc shim
	// groups all containers of a pod into one shim.
	Group string
	// RuncRoot holds the per-container state records.
	RuncRoot  string
	Clock     clock.Clock
	Defaults  Defaults
	Publisher Publisher
	Log       *logrus.Entry
	// OnShutdown is called when Shutdown finds no containers left.
	OnShutdown func()
	// Faults fire at the shim's points; Toggles carry shim_update_nowait
	// and split_disk (where a new container's upper dir goes).
	Faults  *faults.Injector
	Toggles *faults.Toggles
	// Target describes a container for fault selectors; without it (a
	// process-mode shim) the bundle spec's annotations describe it.
	Target func(id string) faults.Target
	// Locks watches the process locks (in-process shims only).
	Locks LockObserver
	// Unmounted is told how long each rootfs unmount took (optional).
	Unmounted UnmountObserver
	// records, when not nil, are every group's process records, read once
	// by a restarting manager for all its in-process shims.
	records map[string][]*processRecord
}

// Service is the fake runc shim's task service (containerd.task.v2.Task).
// Like runc-shim's service, its own mu guards only the container map; the
// per-process Init.mu is where calls wait on each other.
type Service struct {
	cfg      ServiceConfig
	lifetime context.Context
	stop     context.CancelFunc

	mu        sync.Mutex
	processes map[string]*Init
}

var _ taskAPI.TTRPCTaskService = (*Service)(nil)

// NewService makes the task service and restores the processes that a
// previous incarnation of this shim group left in RuncRoot.
func NewService(cfg ServiceConfig) (*Service, error) {
	lifetime, stop := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, lifetime: lifetime, stop: stop, processes: map[string]*Init{}}
	records, err := cfg.records[cfg.Group], error(nil)
	if cfg.records == nil {
		records, err = readRecords(cfg.RuncRoot, cfg.Group)
	}
	if err != nil {
		stop()
		return nil, err
	}
	for _, r := range records {
		p := s.newInit(r.ID, r.Bundle, r.Pid, r.Behaviour, r.Rootfs)
		if spec, err := readSpec(r.Bundle); err == nil {
			// The view serves execs; the program is not resumed and the
			// outputs are not reattached (README, process model).
			p.model = s.newModel(r.ID, spec, "", "", "", false)
		}
		if r.Status != statusDeleted {
			if err := p.rootfs.attach(s.rootfsFilesystem(), cfg.Clock.Now()); err != nil {
				stop()
				return nil, fmt.Errorf("restore %s: %w", r.ID, err)
			}
		}
		p.status, p.exitStatus, p.exitedAt, p.startedAt, p.resources = r.Status, r.ExitStatus, r.ExitedAt, r.StartedAt, r.Resources
		if p.status == statusStopped || p.status == statusDeleted {
			p.waitOnce.Do(func() { close(p.waitBlock) })
		}
		p.mu.Lock()
		p.publishViewLocked()
		p.armExitLocked(cfg.Clock.Now())
		p.mu.Unlock()
		s.processes[r.ID] = p
		cfg.Log.WithFields(logrus.Fields{"id": r.ID, "status": r.Status}).Info("restored process")
	}
	return s, nil
}

// Close ends the shim's lifetime: pending unmounts and timers stop, as they
// would if the shim process died.
func (s *Service) Close() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.processes {
		p.mu.Lock()
		if p.exitTimer != nil {
			p.exitTimer.Stop()
		}
		p.stopModelLocked()
		p.mu.Unlock()
	}
}

func (s *Service) newInit(id, bundle string, pid uint32, b Behaviour, rootfs *Rootfs) *Init {
	p := &Init{
		id: id, bundle: bundle, pid: pid, behaviour: b, clock: s.cfg.Clock,
		baseLog:   s.cfg.Log,
		status:    statusCreated,
		rootfs:    rootfs,
		waitBlock: make(chan struct{}),
	}
	p.exited = s.processExited
	p.persist = func(p *Init) error { return writeRecord(s.cfg.RuncRoot, p.record(s.cfg.Group)) }
	p.toggles = s.cfg.Toggles
	p.locks = s.cfg.Locks
	p.unmounted = s.cfg.Unmounted
	p.fire = func(point string) error { return s.fire(point, id) }
	p.cpu, p.costs, p.v1 = s.cfg.Defaults.CPU, s.cfg.Defaults.Costs, s.cfg.Defaults.V1DeletedState
	return p
}

// fire fires a shim point for a container.
func (s *Service) fire(point, id string) error {
	if !s.cfg.Faults.Active(point) {
		return nil
	}
	return s.cfg.Faults.Fire(s.lifetime, point, s.target(id))
}

func (s *Service) target(id string) faults.Target {
	if s.cfg.Target != nil {
		return s.cfg.Target(id)
	}
	t := faults.Target{ContainerID: id, SandboxID: s.cfg.Group}
	s.mu.Lock()
	p, ok := s.processes[id]
	s.mu.Unlock()
	if ok {
		if spec, err := readSpec(p.bundle); err == nil {
			a := spec.Annotations
			t.ContainerName, t.Annotations = a["io.kubernetes.cri.container-name"], a
			t.PodName, t.PodNamespace = a["io.kubernetes.cri.sandbox-name"], a["io.kubernetes.cri.sandbox-namespace"]
		}
	}
	return t
}

// Interceptor fires the shim.<Method> point of every task call, once its
// request is decoded (so the target is known) and before the method runs.
func (s *Service) Interceptor(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (interface{}, error) {
	// The call's deadline, on the shim's clock (package deadline).
	ctx, cancel := deadline.InboundTTRPC(ctx, s.cfg.Clock)
	defer cancel()
	name := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	point := faults.ShimPoint(name)
	if !s.cfg.Faults.Active(point) {
		return method(ctx, unmarshal)
	}
	return method(ctx, func(v interface{}) error {
		if err := unmarshal(v); err != nil {
			return err
		}
		id := ""
		if r, ok := v.(interface{ GetID() string }); ok {
			id = r.GetID()
		}
		return s.fire(point, id)
	})
}

func (s *Service) get(id string) (*Init, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.processes[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "container not created")
	}
	return p, nil
}

func (s *Service) publish(topic string, ev proto.Message) {
	if s.cfg.Publisher != nil {
		s.cfg.Publisher.Publish(s.lifetime, topic, ev)
	}
}

func (s *Service) processExited(p *Init) {
	st := p.State()
	s.cfg.Log.WithFields(logrus.Fields{"id": p.id, "exit_status": st.exitStatus}).Debug("process exited")
	s.publish(TopicTaskExit, &eventstypes.TaskExit{
		ContainerID: p.id, ID: p.id, Pid: st.pid, ExitStatus: st.exitStatus,
		ExitedAt: timestamppb.New(st.exitedAt),
	})
}

// rootfsFilesystem is where a new upper dir goes: the node's snapshotter
// filesystem, on its own device with split_disk; nil in the per-container
// layout.
func (s *Service) rootfsFilesystem() *disk.Filesystem {
	return s.cfg.Defaults.Node.Rootfs(s.cfg.Toggles.Enabled(faults.FixSplitDisk))
}

// fakePid gives a stable pid per container id, so a restored shim reports
// the same pid.
func fakePid(id string) uint32 { return 10000 + crc32.ChecksumIEEE([]byte(id))%4_000_000 }

func (s *Service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	if r.ID == "" {
		return nil, status.Errorf(codes.InvalidArgument, "id must not be empty")
	}
	spec, err := readSpec(r.Bundle)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "create %s: %v", r.ID, err)
	}
	b, err := ParseBehaviour(spec.Annotations, s.cfg.Defaults)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "create %s: %v", r.ID, err)
	}
	// runc create runs here: the incident-4 hang (runc stuck on systemd's
	// D-Bus while setting up the cgroup) is a fault at this point.
	point := faults.PointContainerCreate
	if spec.Annotations["io.kubernetes.cri.container-type"] == "sandbox" {
		point = faults.PointSandboxCreate
	}
	if s.cfg.Faults.Active(point) {
		t := faults.Target{ContainerID: r.ID, SandboxID: s.cfg.Group}
		if s.cfg.Target != nil {
			t = s.cfg.Target(r.ID)
		}
		if err := s.cfg.Faults.Fire(s.lifetime, point, t); err != nil {
			return nil, status.Errorf(status.Code(err), "failed to create shim task: OCI runtime create failed: %v", err)
		}
	}
	if err := runc(ctx, s.cfg.Defaults.CPU, nil, "runc create", s.cfg.Defaults.Costs.RuncCreate); err != nil {
		return nil, status.Errorf(status.Code(err), "failed to create shim task: OCI runtime create failed: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.processes[r.ID]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "container %s: already exists", r.ID)
	}
	rootfs := newRootfs(r.Rootfs, b.Disk, b.InitialDirty)
	if err := rootfs.attach(s.rootfsFilesystem(), s.cfg.Clock.Now()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "create %s: %v", r.ID, err)
	}
	p := s.newInit(r.ID, r.Bundle, fakePid(r.ID), b, rootfs)
	p.model = s.newModel(r.ID, spec, r.Stdin, r.Stdout, r.Stderr, r.Terminal)
	p.publishViewLocked() // not yet shared: no lock needed
	if err := p.persist(p); err != nil {
		p.model.stop()
		return nil, status.Errorf(codes.Internal, "create %s: %v", r.ID, err)
	}
	s.processes[r.ID] = p
	s.publish(TopicTaskCreate, &eventstypes.TaskCreate{ContainerID: r.ID, Bundle: r.Bundle, Pid: p.pid})
	return &taskAPI.CreateTaskResponse{Pid: p.pid}, nil
}

func readSpec(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read bundle config: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("decode bundle config: %w", err)
	}
	return &spec, nil
}

func (s *Service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	if r.ExecID != "" {
		return s.startExec(ctx, r)
	}
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	s.publish(TopicTaskStart, &eventstypes.TaskStart{ContainerID: r.ID, Pid: p.pid})
	return &taskAPI.StartResponse{Pid: p.pid}, nil
}

func (s *Service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	if r.ExecID != "" {
		return s.stateExec(r)
	}
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	st := p.State()
	resp := &taskAPI.StateResponse{
		ID: r.ID, Bundle: p.bundle, Pid: st.pid, Status: st.taskStatus(), ExitStatus: st.exitStatus,
	}
	if !st.exitedAt.IsZero() {
		resp.ExitedAt = timestamppb.New(st.exitedAt)
	}
	return resp, nil
}

func (s *Service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	if r.ExecID != "" {
		return s.deleteExec(r)
	}
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	st, took, err := p.Delete(ctx, s.lifetime)
	if err != nil {
		return nil, err
	}
	if !p.v1 {
		// containerd <= 1.2.6's shim kept the deleted process (#3244).
		s.mu.Lock()
		delete(s.processes, r.ID)
		s.mu.Unlock()
	}
	if err := removeRecord(s.cfg.RuncRoot, r.ID); err != nil {
		s.cfg.Log.WithError(err).WithField("id", r.ID).Warn("failed to remove process state")
	}
	s.cfg.Log.WithFields(logrus.Fields{"id": r.ID, "method": "Delete", "cost": took}).Debug("task deleted")
	s.publish(TopicTaskDelete, &eventstypes.TaskDelete{
		ContainerID: r.ID, ID: r.ID, Pid: st.pid, ExitStatus: st.exitStatus, ExitedAt: timestamppb.New(st.exitedAt),
	})
	return &taskAPI.DeleteResponse{Pid: st.pid, ExitStatus: st.exitStatus, ExitedAt: timestamppb.New(st.exitedAt)}, nil
}

func (s *Service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	if r.ExecID != "" {
		return s.killExec(r)
	}
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := p.Kill(ctx, r.Signal); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	var res json.RawMessage
	if r.Resources != nil {
		var lr specs.LinuxResources
		if err := json.Unmarshal(r.Resources.Value, &lr); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "update %s: decode resources: %v", r.ID, err)
		}
		res = r.Resources.Value
	}
	if err := p.Update(ctx, res); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	if r.ExecID != "" {
		return s.waitExec(ctx, r)
	}
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	code, at, err := p.Wait(ctx)
	if err != nil {
		return nil, err
	}
	return &taskAPI.WaitResponse{ExitStatus: code, ExitedAt: timestamppb.New(at)}, nil
}

func (s *Service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	st := p.State()
	if st.status != statusRunning {
		return &taskAPI.PidsResponse{}, nil
	}
	return &taskAPI.PidsResponse{Processes: []*task.ProcessInfo{{Pid: st.pid}}}, nil
}

// Stats reports synthetic usage without taking Init.mu, as runc-shim reads
// cgroups without the process lock.
func (s *Service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	m := syntheticMetrics(p, s.cfg.Clock.Now())
	data, err := json.Marshal(m)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stats %s: %v", r.ID, err)
	}
	return &taskAPI.StatsResponse{Stats: &anypb.Any{TypeUrl: MetricsTypeURL, Value: data}}, nil
}

func (s *Service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: "fakecontainerd-shim"}
	if p, err := s.get(r.ID); err == nil {
		resp.TaskPid = p.pid
	}
	return resp, nil
}

func (s *Service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	n := len(s.processes)
	s.mu.Unlock()
	if n > 0 && !r.Now {
		return &emptypb.Empty{}, nil
	}
	if s.cfg.OnShutdown != nil {
		go s.cfg.OnShutdown()
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	return nil, status.Errorf(codes.Unimplemented, "pause is not supported by fakecontainerd")
}

func (s *Service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	return nil, status.Errorf(codes.Unimplemented, "resume is not supported by fakecontainerd")
}

func (s *Service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, status.Errorf(codes.Unimplemented, "checkpoint is not supported by fakecontainerd")
}

// ResizePty is accepted and ignored: the model's terminal has no size
// (nothing it runs asks for one).
func (s *Service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (s *Service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	if err := s.closeIO(r); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}
