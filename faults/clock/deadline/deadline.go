// Package deadline carries a discounting clock's deadlines across the
// gRPC and ttrpc sockets of one process.
//
// A deadline crosses a socket as a wall duration, and the server side arms
// a wall timer from it. A scenario run's clock leaves out the time the
// machine starved the process (clock.Meter), so its deadlines fall later in
// wall time than the duration sent says. Its contexts therefore send a
// stretched wall deadline, which no server timer reaches first, and these
// interceptors send the virtual deadline beside it, in metadata; on the
// server side the call gets that deadline on the server's clock
// (Clock.Inbound). Calls without it are left as they came.
package deadline

import (
	"context"
	"strconv"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// Key is the metadata key of the virtual deadline, in Unix nanoseconds of
// the clock's virtual time.
const Key = "fakecontainerd-virtual-deadline"

func encode(at time.Time) string { return strconv.FormatInt(at.UnixNano(), 10) }

func decode(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// UnaryClientGRPC sends a context's virtual deadline with the call.
func UnaryClientGRPC(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if at, ok := clock.VirtualDeadline(ctx); ok {
		ctx = metadata.AppendToOutgoingContext(ctx, Key, encode(at))
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// InboundGRPC is the virtual deadline a gRPC call brought, on clk.
func InboundGRPC(ctx context.Context, clk clock.Clock) (context.Context, context.CancelFunc) {
	var at time.Time
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(Key); len(v) > 0 {
			at = decode(v[0])
		}
	}
	return clk.Inbound(ctx, at)
}

// UnaryServerGRPC applies InboundGRPC to every unary call. (The CRI's one
// streaming call, GetContainerEvents, is opened without a deadline.)
func UnaryServerGRPC(clk clock.Clock) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, cancel := InboundGRPC(ctx, clk)
		defer cancel()
		return handler(ctx, req)
	}
}

// UnaryClientTTRPC sends a context's virtual deadline with the call.
func UnaryClientTTRPC(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, _ *ttrpc.UnaryClientInfo, invoker ttrpc.Invoker) error {
	if at, ok := clock.VirtualDeadline(ctx); ok {
		req.Metadata = append(req.Metadata, &ttrpc.KeyValue{Key: Key, Value: encode(at)})
	}
	return invoker(ctx, req, resp)
}

// InboundTTRPC is the virtual deadline a ttrpc call brought, on clk.
func InboundTTRPC(ctx context.Context, clk clock.Clock) (context.Context, context.CancelFunc) {
	var at time.Time
	if v, ok := ttrpc.GetMetadataValue(ctx, Key); ok {
		at = decode(v)
	}
	return clk.Inbound(ctx, at)
}

// UnaryServerTTRPC applies InboundTTRPC to every call.
func UnaryServerTTRPC(clk clock.Clock) ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, _ *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		ctx, cancel := InboundTTRPC(ctx, clk)
		defer cancel()
		return method(ctx, unmarshal)
	}
}
