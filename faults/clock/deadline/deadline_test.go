package deadline

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// waiter answers Check when its context ends, and says how.
type waiter struct {
	healthpb.UnimplementedHealthServer
	clk   clock.Clock
	ended chan error
}

func (w *waiter) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	w.ended <- ctx.Err()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// A call whose process is frozen past the call's wall time ends at its
// virtual deadline on both sides, as DeadlineExceeded: neither the
// server's wall timer nor a client reset ends it early.
func TestGRPCDeadlineSurvivesAFreeze(t *testing.T) {
	m := clock.StartMeter(0, 0)
	defer m.Stop()
	clk, err := clock.Discounting(0.01, m)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(UnaryServerGRPC(clk)))
	w := &waiter{clk: clk, ended: make(chan error, 1)}
	healthpb.RegisterHealthServer(srv, w)
	go srv.Serve(ln)
	defer srv.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(UnaryClientGRPC))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := clk.WithTimeout(context.Background(), 30*time.Second) // 300 ms of wall time
	defer cancel()
	start := clk.Now()
	go func() {
		time.Sleep(50 * time.Millisecond)
		freeze(t, 600*time.Millisecond)
	}()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("client: %v, want DeadlineExceeded", err)
	}
	if got := clk.Since(start); got < 30*time.Second {
		t.Errorf("client gave up after %v of virtual time, want >= 30s", got)
	}
	select {
	case err := <-w.ended:
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			t.Errorf("server context ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("server call never ended")
	}
}

func freeze(t *testing.T, d time.Duration) {
	pid := strconv.Itoa(os.Getpid())
	script := "kill -STOP " + pid + "; sleep " + strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "; kill -CONT " + pid
	if err := exec.Command("sh", "-c", script).Run(); err != nil {
		t.Errorf("freeze: %v", err)
	}
}

// The virtual deadline a client sends is the one the server's call gets,
// a transit later, over gRPC and ttrpc alike; a call without one is left
// alone.
func TestInboundTakesTheSentDeadline(t *testing.T) {
	m := clock.StartMeter(0, 0)
	defer m.Stop()
	clk, _ := clock.Discounting(0.01, m)
	at := clk.Now().Add(time.Minute)
	for _, tc := range []struct {
		name string
		in   func(context.Context) (context.Context, context.CancelFunc)
		with func(context.Context, string) context.Context
	}{
		{"grpc", func(ctx context.Context) (context.Context, context.CancelFunc) { return InboundGRPC(ctx, clk) },
			func(ctx context.Context, v string) context.Context {
				return metadata.NewIncomingContext(ctx, metadata.Pairs(Key, v))
			}},
		{"ttrpc", func(ctx context.Context) (context.Context, context.CancelFunc) { return InboundTTRPC(ctx, clk) },
			func(ctx context.Context, v string) context.Context {
				return ttrpc.WithMetadata(ctx, ttrpc.MD{Key: []string{v}})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.in(tc.with(context.Background(), encode(at)))
			defer cancel()
			// A transit (1 ms of wall time, 100 ms here) after the client's.
			if got, ok := clock.VirtualDeadline(ctx); !ok || got.Before(at) || got.Sub(at) > 100*time.Millisecond {
				t.Errorf("virtual deadline %v (%v), want %v plus at most 100ms", got, ok, at)
			}
			bare := context.Background()
			if ctx, cancel := tc.in(bare); ctx != bare {
				cancel()
				t.Error("a call without a virtual deadline got a new context")
			}
			if ctx, cancel := tc.in(tc.with(bare, "garbage")); ctx.Err() != nil {
				cancel()
				t.Error("a garbled deadline ended the call")
			}
		})
	}
}
