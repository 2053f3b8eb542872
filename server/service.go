// Package server is fakecontainerd's CRI plugin: the RuntimeService and
// ImageService, written after containerd's pkg/cri/server. One file per CRI
// verb; events.go owns exit handling, restart.go recovery at start-up and
// instrumented.go the logging wrapper around every method.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/faults/clock/deadline"
	"github.com/fakecontainerd/fakecontainerd/shim"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
	"github.com/fakecontainerd/fakecontainerd/store/cpu"
	"github.com/fakecontainerd/fakecontainerd/store/disk"
	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// Plugin directories under --root, as containerd lays them out.
const (
	criPluginDir      = "io.containerd.grpc.v1.cri"
	metadataPluginDir = "io.containerd.metadata.v1.bolt"
	snapshotPluginDir = "io.containerd.snapshotter.v1.overlayfs"
)

// Options configures a Server.
type Options struct {
	Config *configs.Config
	Clock  clock.Clock
	Log    *logrus.Entry
	// Executable runs process-mode shims (`<Executable> shim ...`).
	Executable string
	// ShimArgs come before the manager's own flags on a shim's command line.
	ShimArgs []string
	// Faults and Toggles, if nil, are made from the config; a caller that
	// passes its own (the A/B runner) keeps a handle on them.
	Faults  *faults.Injector
	Toggles *faults.Toggles
	// Timeline, if set, sees every tracked status-lock hold and every
	// in-process shim's unmount (timeline.go): the A/B runner's report.
	Timeline TimelineObserver
}

// criService holds the CRI plugin's state: the stores, the metadata
// database, the shims and the event monitor. Its methods return plain
// errors; instrumentedService turns them into gRPC statuses.
type criService struct {
	config *configs.Config
	clock  clock.Clock
	log    *logrus.Entry

	rootDir  string // <root>/io.containerd.grpc.v1.cri
	stateDir string // <state>/io.containerd.grpc.v1.cri

	db             *metadata.DB
	containerStore *containerstore.Store
	sandboxStore   *sandboxstore.Store
	imageStore     *imagestore.Store
	shims          *shim.Manager

	containerNames *nameRegistrar
	sandboxNames   *nameRegistrar
	ips            *ipAllocator

	eventMonitor *eventMonitor
	events       *containerEventBroadcaster
	streamServer *streamServer

	faults  *faults.Injector
	toggles *faults.Toggles

	// disk is the node's disk layout; nil is the per-container one.
	disk *disk.Node
	// cpu is the node's cores; nil is the CPU model off.
	cpu *cpu.Node

	// tracker follows lock holders and waiters for blame; nil when
	// lock_tracking is off.
	tracker *lockTracker
	// metrics is nil unless [metrics] address is set (metrics.go).
	metrics *metrics

	// lifetime ends when the server closes; work that models a syscall
	// (and so ignores its caller's deadline) still ends with it.
	lifetime context.Context
	stop     context.CancelFunc

	// podCIDR is set by UpdateRuntimeConfig.
	mu      sync.Mutex
	podCIDR string
}

// Server serves the CRI over gRPC on a unix socket, and the ttrpc events
// service the shims publish to.
type Server struct {
	cri         *criService
	grpc        *grpc.Server
	ttrpc       *ttrpc.Server
	grpcLn      net.Listener
	ttrpcLn     net.Listener
	grpcAddress string
	admin       *adminServer
	// metricsEndpoint and debugEndpoint serve [metrics] and [debug]
	// address; nil when not configured (endpoints.go).
	metricsEndpoint *httpEndpoint
	debugEndpoint   *httpEndpoint
	closeOnce       sync.Once
}

// TTRPCAddress is where the shims' events go: containerd's default
// ttrpc address, the gRPC address plus ".ttrpc".
func TTRPCAddress(grpcAddress string) string { return grpcAddress + ".ttrpc" }

// New opens the state under the configured root and state dirs, recovers
// what a previous run left (restart.go) and listens on the CRI socket.
func New(ctx context.Context, o Options) (_ *Server, retErr error) {
	cfg := o.Config
	if err := CheckDirs(cfg.Root, cfg.State); err != nil {
		return nil, err
	}
	if err := markDirs(cfg.Root, cfg.State); err != nil {
		return nil, err
	}
	c := &criService{
		config:         cfg,
		clock:          o.Clock,
		log:            o.Log,
		rootDir:        filepath.Join(cfg.Root, criPluginDir),
		stateDir:       filepath.Join(cfg.State, criPluginDir),
		containerStore: containerstore.NewStore(),
		sandboxStore:   sandboxstore.NewStore(),
		imageStore:     imagestore.NewStore(),
		containerNames: newNameRegistrar(),
		sandboxNames:   newNameRegistrar(),
		podCIDR:        cfg.Plugins.Fake.PodCIDR,
		events:         newContainerEventBroadcaster(),
		faults:         o.Faults,
		toggles:        o.Toggles,
	}
	c.lifetime, c.stop = context.WithCancel(context.Background())
	if cfg.Plugins.Fake.LockTracking {
		c.tracker = newLockTracker(o.Clock)
		c.tracker.timeline = o.Timeline
	}
	if err := c.initFaults(cfg); err != nil {
		return nil, err
	}
	if c.tracker != nil {
		// Blame names the fault that holds a lock or a call.
		c.faults.OnHold(c.tracker.faultHeld)
	}
	if cfg.Metrics.Address != "" {
		c.initMetrics()
	}
	for _, d := range []string{c.rootDir, c.stateDir, filepath.Join(cfg.Root, snapshotPluginDir)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	ips, err := newIPAllocator(cfg.Plugins.Fake.PodCIDR)
	if err != nil {
		return nil, err
	}
	c.ips = ips
	dbOpts := []metadata.Opt{metadata.WithNow(o.Clock.Now), metadata.WithCommitHook(c.metadataCommitHook)}
	if c.tracker != nil {
		dbOpts = append(dbOpts, metadata.WithTxObserver(metadataLocks{c.tracker}))
	}
	db, err := metadata.Open(filepath.Join(cfg.Root, metadataPluginDir, "meta.db"), dbOpts...)
	if err != nil {
		return nil, err
	}
	c.db = db
	s := &Server{cri: c, grpcAddress: cfg.GRPC.Address}
	defer func() {
		if retErr != nil {
			s.Close()
		}
	}()

	// The events service must listen before any shim starts publishing.
	ttrpcAddr := TTRPCAddress(cfg.GRPC.Address)
	if s.ttrpcLn, err = listenUnix(ttrpcAddr, 0o600); err != nil {
		return nil, fmt.Errorf("listen on ttrpc address %s: %w", ttrpcAddr, err)
	}
	if s.ttrpc, err = ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(deadline.UnaryServerTTRPC(o.Clock))); err != nil {
		return nil, fmt.Errorf("new ttrpc server: %w", err)
	}
	c.eventMonitor = newEventMonitor(c)
	eventsapi.RegisterTTRPCEventsService(s.ttrpc, c.eventMonitor)
	go func() {
		if err := s.ttrpc.Serve(context.Background(), s.ttrpcLn); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			c.log.WithError(err).Error("ttrpc events server stopped")
		}
	}()

	fake := cfg.Plugins.Fake
	defaults := shim.Defaults{
		Disk: shim.DiskModel{
			WriteRate: fake.RootfsWriteRate.Bytes(), DirtyLimit: fake.DirtyLimit.Bytes(), Throughput: fake.DiskThroughput.Bytes(),
		},
		StopGrace:  fake.StopGrace.Duration(),
		IgnoreTerm: fake.StopGrace.Never(),
	}
	if fake.StopGrace.Never() {
		defaults.StopGrace = 0
	}
	if c.disk, err = disk.NewNode(diskLayout(fake), o.Clock.Now()); err != nil {
		return nil, fmt.Errorf("disk layout: %w", err)
	}
	defaults.Node = c.disk
	c.cpu = cpu.New(fake.CPU.Cores, o.Clock)
	defaults.CPU, defaults.Costs = c.cpu, shimCosts(fake.CPU)
	defaults.V1DeletedState = fake.ShimV1DeletedState
	shimCfg := shim.ManagerConfig{
		StateDir: cfg.State, Mode: fake.ShimMode, EventsAddress: ttrpcAddr, Clock: o.Clock,
		Defaults: defaults, Log: o.Log, Executable: o.Executable, Args: o.ShimArgs,
		Faults: c.faults, Toggles: c.toggles, Target: c.containerTarget,
	}
	if c.tracker != nil {
		shimCfg.Locks = processLocks{c.tracker}
	}
	shimCfg.Calls = c.shimCallObserver()
	shimCfg.Unmounted = c.unmountObserver(o.Timeline)
	shimCfg.ContainerdV2 = fake.ContainerdVersion == configs.ContainerdV2
	shimCfg.PidFromState = fake.ContainerdVersion != configs.ContainerdV16
	c.shims, err = shim.NewManager(shimCfg)
	if err != nil {
		return nil, err
	}
	if err := c.recover(ctx); err != nil {
		return nil, fmt.Errorf("recover state: %w", err)
	}
	c.eventMonitor.start()

	if c.streamServer, err = newStreamServer(c, cfg.Plugins.CRI); err != nil {
		return nil, fmt.Errorf("failed to create stream server: %w", err)
	}
	if s.admin, err = c.startAdmin(AdminAddress(cfg)); err != nil {
		return nil, err
	}
	s.grpcLn, err = listenUnix(cfg.GRPC.Address, 0o660)
	if err != nil {
		return nil, fmt.Errorf("listen on CRI address %s: %w", cfg.GRPC.Address, err)
	}
	if cfg.GRPC.UID != 0 || cfg.GRPC.GID != 0 {
		if err := os.Chown(cfg.GRPC.Address, cfg.GRPC.UID, cfg.GRPC.GID); err != nil {
			return nil, fmt.Errorf("chown CRI socket: %w", err)
		}
	}
	in := &instrumentedService{c: c}
	s.grpc = grpc.NewServer(grpc.ChainUnaryInterceptor(deadline.UnaryServerGRPC(o.Clock), in.encodedLists), grpc.ForceServerCodecV2(newListCodec()))
	runtime.RegisterRuntimeServiceServer(s.grpc, in)
	runtime.RegisterImageServiceServer(s.grpc, in)
	registerV1alpha2(s.grpc, in)
	if c.metrics != nil {
		if s.metricsEndpoint, err = serveEndpoint("metrics", "metrics.address", cfg.Metrics.Address, 0o660, c.metrics.handler(), c.log); err != nil {
			return nil, err
		}
	}
	if cfg.Debug.Address != "" {
		if s.debugEndpoint, err = serveEndpoint("debug", "debug.address", cfg.Debug.Address, 0o600, debugHandler(), c.log); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// listenUnix listens on a unix socket path with the given mode, removing a
// stale socket that nobody answers on.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another server", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Address is the CRI socket path.
func (s *Server) Address() string { return s.grpcAddress }

// Serve answers CRI calls until Close.
func (s *Server) Serve() error {
	err := s.grpc.Serve(s.grpcLn)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Close stops serving at once: in-flight calls end with Unavailable. The
// shims of process mode keep running for the next server.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.grpc != nil {
			s.grpc.Stop()
		} else if s.grpcLn != nil {
			s.grpcLn.Close()
		}
		c := s.cri
		c.stop()
		c.streamServer.close()
		s.metricsEndpoint.close()
		s.debugEndpoint.close()
		if s.admin != nil {
			s.admin.close()
		}
		if c.faults != nil {
			// Let go of every injected delay and block so calls can end.
			c.faults.Close()
		}
		if c.eventMonitor != nil {
			c.eventMonitor.stop()
		}
		if c.shims != nil {
			c.shims.Close()
		}
		if s.ttrpc != nil {
			s.ttrpc.Close()
		}
		if c.db != nil {
			c.db.Close()
		}
		c.events.close()
		// Only the sockets this server bound are its to remove: a server
		// that failed to start because another serves the address must
		// leave that one reachable.
		if s.grpcLn != nil {
			os.Remove(s.grpcAddress)
		}
		if s.ttrpcLn != nil {
			os.Remove(TTRPCAddress(s.grpcAddress))
		}
	})
}

// Shutdown stops accepting calls and lets in-flight ones finish until ctx
// ends; the rest then get Unavailable. State is already on disk (every
// change is written as it happens), so nothing needs flushing.
func (s *Server) Shutdown(ctx context.Context) {
	if s.grpc != nil {
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
		}
	}
	s.Close()
}
