package command

import (
	"context"
	"strconv"
	"testing"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// BenchmarkSleepLoop is one iteration of the loop most fake containers run
// (`while true; do sleep 1; done`), its sleep taking no wall time.
func BenchmarkSleepLoop(b *testing.B) {
	clk, err := clock.New(1e-9)
	if err != nil {
		b.Fatal(err)
	}
	p := Parse([]string{"sh", "-c", "i=0; while [ $i -lt " + itoa(b.N) + " ]; do sleep 1; i=$((i+1)); done"})
	b.ResetTimer()
	if _, err := p.Run(context.Background(), Env{Clock: clk}); err != nil {
		b.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
