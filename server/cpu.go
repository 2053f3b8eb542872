package server

import (
	"context"
	"fmt"
	"time"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/shim"
	"github.com/fakecontainerd/fakecontainerd/store/cpu"
)

// shimCosts is the config's CPU costs of the shims' runc work.
func shimCosts(c configs.CPUConfig) shim.Costs {
	return shim.Costs{
		ShimStart: c.ShimStart.Duration(), RuncCreate: c.RuncCreate.Duration(), RuncStart: c.RuncStart.Duration(),
		RuncExec: c.RuncExec.Duration(), RuncKill: c.RuncKill.Duration(), RuncDelete: c.RuncDelete.Duration(),
		RuncUpdate: c.RuncUpdate.Duration(),
	}
}

// onCPU is containerd's own work on the node's cores (store/cpu): it
// waits its turn on the run queue, under the call's deadline. With the
// model off it costs nothing.
func (c *criService) onCPU(ctx context.Context, what string, cost time.Duration) error {
	if c.cpu == nil || cost <= 0 {
		return nil
	}
	if c.tracker != nil {
		if d := c.cpu.Describe(what); d != "" {
			c.tracker.detailHeld(d)
		}
	}
	if err := c.cpu.Run(ctx, what, cost); err != nil {
		return fmt.Errorf("%s: waiting for CPU: %w", what, err)
	}
	return nil
}

// listCost is what a list's work costs for n objects examined.
func (c *criService) listCost(n int) time.Duration {
	return time.Duration(n) * c.config.Plugins.Fake.CPU.ListItem.Duration()
}

// CPULoad reads the node's run queue (zero with the CPU model off).
func (s *Server) CPULoad() cpu.Load { return s.cri.cpu.Load() }
