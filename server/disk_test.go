package server

import (
	"context"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// TestNodeDisk: on one shared disk, a dying container's unmount is a
// syncfs of every container's dirty pages, and a healthy container's
// UpdateContainerResources (a bbolt commit and a status checkpoint, each
// fsync'd) waits behind it on the device, status lock held. With
// split_disk the rootfs writeback is on its own device: the unmount is as
// slow, but the update's fsyncs wait for nothing.
func TestNodeDisk(t *testing.T) {
	cases := []struct {
		name      string
		split     bool
		wantHold  string
		slowFsync bool
	}{
		{name: "one disk", wantHold: "syncfs of /var/lib/containerd overlay: 1.2 GiB dirty node-wide on vdb", slowFsync: true},
		{name: "split_disk", split: true,
			wantHold: "syncfs of /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs overlay: 1.2 GiB dirty node-wide on vdc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, 0.01, func(c *configs.Config) {
				f := &c.Plugins.Fake
				// Nothing written while running: the pool is the two
				// containers' 600 MiB each, a 120 s syncfs at 10 MiB/s.
				f.RootfsWriteRate = 0
				f.Disk = configs.DiskConfig{RootMount: "/var/lib/containerd", RootDevice: "vdb", SplitDevice: "vdc",
					Devices: []configs.DiskDeviceConfig{{Name: "vdb", Throughput: 10 << 20}, {Name: "vdc", Throughput: 10 << 20}}}
				if tc.split {
					f.Fixes = append(f.Fixes, string(faults.FixSplitDisk))
				}
			})
			podID, pc := ts.runPod("job")
			t0 := ts.clock.Now()
			dying := ts.startContainer(podID, pc, "dying", map[string]string{
				shim.AnnotationExitAfter: "5s", shim.AnnotationExitCode: "137", shim.AnnotationDirtyBytes: "600MiB",
			})
			healthy := ts.startContainer(podID, pc, "healthy", map[string]string{shim.AnnotationDirtyBytes: "600MiB"})
			_ = ts.clock.Sleep(context.Background(), 10*time.Second-ts.clock.Since(t0))

			// blame names the disk wait of the unmount.
			h, _ := ts.findHolder(10*time.Second, func(lock string, h UseEntry) bool {
				return h.Op == "shim Delete" && strings.Contains(lock, dying[:8]) && h.Detail != ""
			})
			if hold := h.Detail; !strings.Contains(hold, tc.wantHold) {
				t.Errorf("shim Delete's detail = %q, want it to say %q", hold, tc.wantHold)
			}

			var update timedCall
			done := make(chan struct{})
			go func() {
				defer close(done)
				update = ts.timed(func() error {
					_, err := ts.rt.UpdateContainerResources(ts.ctx(5*time.Minute), &runtime.UpdateContainerResourcesRequest{
						ContainerId: healthy, Linux: &runtime.LinuxContainerResources{CpuShares: 512},
					})
					return err
				})
			}()
			if tc.slowFsync {
				// Once the update holds the healthy container's status lock
				// across its fsync, a list waits on it, and blame says the
				// holder waits on the disk, behind what.
				want := "fsync of meta.db (UpdateContainer): 16.0 KiB on vdb, 1 sync queued ahead (behind syncfs of /var/lib/containerd overlay, 1.2 GiB)"
				if _, held := ts.findHolder(10*time.Second, func(lock string, h UseEntry) bool {
					return strings.Contains(lock, "status lock of container "+healthy[:8]) && h.Detail == want
				}); !held {
					t.Errorf("blame never showed UpdateContainerResources holding the status lock with detail %q", want)
				}
				go ts.rt.ListContainers(ts.ctx(10*time.Minute), &runtime.ListContainersRequest{})
				var chains []string
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					var rep BlameReport
					ts.adminGet("/v1/blame", &rep)
					chains = rep.Chains
					if strings.Contains(strings.Join(chains, "\n"), want) {
						break
					}
				}
				found := false
				for _, c := range chains {
					found = found || strings.HasPrefix(c, "ListContainers waits on the status lock of container "+healthy[:8]) && strings.Contains(c, want)
				}
				if !found {
					t.Errorf("no blame chain from ListContainers to the fsync behind the syncfs: %q", chains)
				}
			}
			<-done
			t.Logf("update of the healthy container: %v (%v)", update.took, update.err)
			if update.err != nil {
				t.Errorf("UpdateContainerResources: %v", update.err)
			}
			// The syncfs ends about 120 s after the exit, 110 s after the
			// update began: the update waits most of it, or none of it.
			if tc.slowFsync && update.took < 60*time.Second {
				t.Errorf("update took %v: its fsyncs should have queued behind the 120 s syncfs on the shared device", update.took)
			}
			if !tc.slowFsync && update.took > 20*time.Second {
				t.Errorf("update took %v: with split_disk its fsyncs are on a device with nothing queued", update.took)
			}
			ts.waitState(dying, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
		})
	}
}
