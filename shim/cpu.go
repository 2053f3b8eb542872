package shim

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/store/cpu"
)

// runc is one runc invocation's CPU on the node (store/cpu), under the
// caller's context: go-runc runs runc with exec.CommandContext, so a
// deadline that ends the shim call kills runc and its work with it. tok,
// when the caller holds the process lock, tells blame what the holder
// waits for. With the model off it costs nothing.
func runc(ctx context.Context, node *cpu.Node, tok LockToken, what string, cost time.Duration) error {
	if node == nil || cost <= 0 {
		return nil
	}
	if tok != nil {
		if d := node.Describe(what); d != "" {
			tok.Detail(d)
		}
	}
	if err := node.Run(ctx, what, cost); err != nil {
		return status.Errorf(codeOf(err), "%s: %v", what, err)
	}
	return nil
}

// codeOf is the gRPC code of a context's end.
func codeOf(err error) codes.Code {
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded
	}
	return codes.Canceled
}
