package shim

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// The debug line of a failed shim Delete carries ttrpc's error as
// containerd's runtime/v2 logs it ("context deadline exceeded"), while the
// error returned has errdefs' word appended ("...: unknown").
func TestDeleteFailureLogLine(t *testing.T) {
	f := newFixture(t, 0.01)
	f.log.SetLevel(logrus.DebugLevel)
	f.log.SetOutput(io.Discard)
	hook := logtest.NewLocal(f.log)
	tk := f.create(t, "c1", map[string]string{AnnotationDirtyBytes: "60MiB"})
	if err := tk.Kill(context.Background(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ch, _ := tk.Wait(context.Background())
	<-ch
	ctx, cancel := f.clock.WithTimeout(context.Background(), 10*time.Second)
	_, err := tk.Delete(ctx, WithProcessKill)
	cancel()
	if err == nil || err.Error() != "failed to delete task: context deadline exceeded: unknown" {
		t.Fatalf("delete: %v, want the field's deadline error", err)
	}
	for _, e := range hook.AllEntries() {
		if e.Message != "failed to delete task" {
			continue
		}
		got, _ := e.Data[logrus.ErrorKey].(error)
		if e.Level != logrus.DebugLevel || got == nil || got.Error() != "context deadline exceeded" || e.Data["id"] != "c1" {
			t.Errorf("%s %q error=%v id=%v; want debug, error=\"context deadline exceeded\", id=c1", e.Level, e.Message, got, e.Data["id"])
		}
		return
	}
	t.Error("no \"failed to delete task\" line")
}
