package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/cri-client/pkg/fake"
)

// Server names, as the table's columns say them.
const (
	nameOurs  = "fakecontainerd"
	namePeer  = "peer"
	nameFloor = "floor"
)

// callTimeout is every cri-client call's deadline (kubelet's default
// --runtime-request-timeout is 2m).
const callTimeout = 2 * time.Minute

// server is one server under test: its process and its clients.
type server struct {
	name string
	proc *proc
	// rt[0] is the single client; all of them serve the concurrent runs.
	rt  []internalapi.RuntimeService
	img internalapi.ImageManagerService
}

func (s *server) close() {
	for _, rt := range s.rt {
		_ = rt.Close(context.Background())
	}
	if s.proc != nil {
		s.proc.stop()
	}
}

// connect makes n cri-client runtime clients (and an image client), each
// its own gRPC connection, as n kubelets or crictls would have.
func (s *server) connect(ctx context.Context, n int) error {
	ep := "unix://" + s.proc.sock
	for range n {
		rt, err := remote.NewRemoteRuntimeService(ctx, ep, callTimeout, nil, false)
		if err != nil {
			return fmt.Errorf("%s: connect: %w", s.name, err)
		}
		s.rt = append(s.rt, rt)
	}
	if s.name == nameFloor {
		return nil // the floor serves no images
	}
	img, err := remote.NewRemoteImageService(ctx, ep, callTimeout, nil, false)
	if err != nil {
		return fmt.Errorf("%s: connect image service: %w", s.name, err)
	}
	s.img = img
	return nil
}

// proc is a server process started by cribench.
type proc struct {
	name string
	cmd  *exec.Cmd
	sock string
	log  string
	done chan struct{}
}

// startProc runs argv with its output in logPath and waits until sock
// accepts connections.
func startProc(name string, argv []string, sock, logPath string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Should cribench die, its servers go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, sock: sock, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited during start-up: %v (log %s)\n%s", name, cmd.ProcessState, logPath, tail(logPath, 20))
		default:
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not listen on %s within a minute (log %s)", name, sock, logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process by its pid: SIGTERM, then SIGKILL after 15 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// rssBytes is VmRSS from /proc/<pid>/status.
func (p *proc) rssBytes() (int64, error) { return procStatusBytes(p.cmd.Process.Pid, "VmRSS:") }

// hwmBytes is VmHWM, the peak RSS.
func (p *proc) hwmBytes() (int64, error) { return procStatusBytes(p.cmd.Process.Pid, "VmHWM:") }

func procStatusBytes(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			fields := strings.Fields(v) // "123456 kB"
			if len(fields) != 2 || fields[1] != "kB" {
				return 0, fmt.Errorf("/proc/%d/status: odd %s line %q", pid, key, sc.Text())
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s line", pid, key)
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// startOurs runs `fakecontainerd serve` with a temp root and state under dir.
func startOurs(o *options, dir string) (*proc, error) {
	sock := filepath.Join(dir, "f.sock")
	argv := append([]string{o.fakecontainerd, "serve", "--address", sock,
		"--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--log-level", "warn"}, o.fcdArgs...)
	return startProc(nameOurs, argv, sock, filepath.Join(dir, "fakecontainerd.log"))
}

// startPeer runs cribench serve-peer.
func startPeer(o *options, dir string) (*proc, error) {
	sock := filepath.Join(dir, "p.sock")
	argv := append(append([]string{}, o.self...), rolePeer, "--address", sock)
	return startProc(namePeer, argv, sock, filepath.Join(dir, "peer.log"))
}

// startFloor runs cribench serve-floor with the response it must return.
func startFloor(o *options, dir string, resp *runtime.ListContainersResponse) (*proc, error) {
	data, err := proto.Marshal(resp)
	if err != nil {
		return nil, err
	}
	respFile := filepath.Join(dir, "floor-response.pb")
	if err := os.WriteFile(respFile, data, 0o600); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "l.sock")
	argv := append(append([]string{}, o.self...), roleFloor, "--address", sock, "--response", respFile)
	return startProc(nameFloor, argv, sock, filepath.Join(dir, "floor.log"))
}

// The hidden modes cribench re-executes itself in.
const (
	rolePeer  = "serve-peer"
	roleFloor = "serve-floor"
)

func isRole(arg string) bool { return arg == rolePeer || arg == roleFloor }

// serveRole serves the peer or the floor on --address until SIGTERM.
func serveRole(role string, args []string) error {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	address := fs.String("address", "", "unix socket path")
	respFile := fs.String("response", "", "serve-floor: the ListContainersResponse to return (binary protobuf)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *address == "" {
		return errors.New("--address is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch role {
	case rolePeer:
		// Exactly what kubelet's tests run: the fake RuntimeService and
		// ImageService behind a default grpc.Server.
		rt := fake.NewFakeRemoteRuntime()
		if err := rt.Start("unix://" + *address); err != nil {
			return err
		}
		<-ctx.Done()
		rt.Stop()
		return nil
	case roleFloor:
		data, err := os.ReadFile(*respFile)
		if err != nil {
			return err
		}
		if err := proto.Unmarshal(data, &runtime.ListContainersResponse{}); err != nil {
			return fmt.Errorf("%s: %w", *respFile, err)
		}
		ln, err := net.Listen("unix", *address)
		if err != nil {
			return err
		}
		srv := grpc.NewServer(grpc.ForceServerCodecV2(rawListCodec{encoding.GetCodecV2(protoenc.Name)}))
		runtime.RegisterRuntimeServiceServer(srv, &floorServer{encoded: data})
		go func() {
			<-ctx.Done()
			srv.Stop()
		}()
		return srv.Serve(ln)
	}
	return fmt.Errorf("unknown role %q", role)
}

// floorServer answers Version and returns one pre-built ListContainers
// response whatever the request; everything else is Unimplemented. The
// response is sent as the bytes it was encoded to once (rawListCodec), so
// a call costs the transport and the client's decoding and nothing else.
type floorServer struct {
	runtime.UnimplementedRuntimeServiceServer
	encoded []byte
}

func (f *floorServer) Version(context.Context, *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{Version: "0.1.0", RuntimeName: "cribench-floor", RuntimeVersion: "0", RuntimeApiVersion: "v1"}, nil
}

func (f *floorServer) ListContainers(context.Context, *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	r := &runtime.ListContainersResponse{}
	r.ProtoReflect().SetUnknown(f.encoded)
	return r, nil
}

// rawListCodec is the proto codec, except that a ListContainersResponse
// carrying its encoding as unknown fields (floorServer's) is sent as those
// bytes, shared by every call and never copied or freed.
type rawListCodec struct{ encoding.CodecV2 }

func (c rawListCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*runtime.ListContainersResponse); ok && len(r.Containers) == 0 {
		if b := r.ProtoReflect().GetUnknown(); len(b) > 0 {
			return mem.BufferSlice{mem.SliceBuffer(b)}, nil
		}
	}
	return c.CodecV2.Marshal(v)
}
