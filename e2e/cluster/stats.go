package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// procSample is one process's RSS and CPU time at one moment.
type procSample struct {
	rss int64 // bytes
	// pss is the proportional set size (smaps_rollup): pages shared with
	// other processes, the binary's text mapped by every node's copy,
	// counted as a share.
	pss int64
	cpu time.Duration
}

// readProc reads /proc/PID/status (VmRSS) and /proc/PID/stat (utime+stime).
func readProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("pid %d: VmRSS %q: %w", pid, v, err)
			}
			s.rss = kb << 10
		}
	}
	if s.pss, err = readPSS(pid); err != nil {
		return s, err
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces: count from its ")".
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("pid %d: bad utime/stime in /proc stat", pid)
	}
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	return s, nil
}

// readPSS is Pss from /proc/PID/smaps_rollup.
func readPSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("pid %d: Pss %q: %w", pid, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("pid %d: no Pss in smaps_rollup", pid)
}

// pidOf reads a pid file cluster.sh wrote.
func (c *cluster) pidOf(name string) (int, error) {
	data, err := os.ReadFile(filepath.Join(c.runDir, "pids", name+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// readOnly is a node's kubelet read-only endpoint (/metrics without auth):
// host:port.
func (c *cluster) readOnly(node string) (string, error) {
	port, err := c.readOnlyPort(node)
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1"
	if data, err := os.ReadFile(filepath.Join(c.nodeDir(node), "address")); err == nil {
		addr = strings.TrimSpace(string(data))
	}
	return net.JoinHostPort(addr, strconv.Itoa(port)), nil
}

func (c *cluster) readOnlyPort(node string) (int, error) {
	data, err := os.ReadFile(filepath.Join(c.nodeDir(node), "kubelet.json"))
	if err != nil {
		return 0, err
	}
	var cfg struct {
		ReadOnlyPort int `json:"readOnlyPort"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return 0, fmt.Errorf("node %s: kubelet.json: %w", node, err)
	}
	return cfg.ReadOnlyPort, nil
}

// histogram is a Prometheus histogram's cumulative buckets.
type histogram struct {
	le    []float64
	count []float64
}

// relistHistogram is kubelet_pleg_relist_<what>_seconds from a node's
// kubelet /metrics.
func relistHistogram(ctx context.Context, hostPort string, what string) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostPort+"/metrics", nil)
	if err != nil {
		return histogram{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	return parseHistogram(resp.Body, "kubelet_pleg_relist_"+what+"_seconds_bucket")
}

func parseHistogram(r io.Reader, name string) (histogram, error) {
	var h histogram
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), name+"{")
		if !ok {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.LastIndexByte(line, ' ')
		if i < 0 || j < 0 {
			continue
		}
		leStr := line[i+4:]
		leStr = leStr[:strings.IndexByte(leStr, '"')]
		le, err1 := strconv.ParseFloat(leStr, 64) // "+Inf" parses as +Inf
		n, err2 := strconv.ParseFloat(line[j+1:], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		h.le, h.count = append(h.le, le), append(h.count, n)
	}
	if len(h.le) == 0 {
		return h, fmt.Errorf("no %s in /metrics", name)
	}
	return h, sc.Err()
}

// quantile is the upper bound of the bucket holding quantile q of the
// observations made between before and h.
func (h histogram) quantile(before histogram, q float64) float64 {
	if len(before.count) != len(h.count) {
		before = histogram{count: make([]float64, len(h.count))}
	}
	total := h.count[len(h.count)-1] - before.count[len(before.count)-1]
	if total <= 0 {
		return math.NaN()
	}
	for i := range h.le {
		if h.count[i]-before.count[i] >= q*total {
			return h.le[i]
		}
	}
	return math.Inf(1)
}

type procStat struct {
	name string
	rss  int64
	pss  int64
	cpu  float64 // % of one core over the interval
}

type nodeStat struct {
	node                   string
	kubelet, fake          procStat
	relistP99, intervalP99 float64
	relists                float64
	pods                   int
}

type stats struct {
	interval time.Duration
	control  []procStat
	nodes    []nodeStat
}

// measure samples every process twice, interval apart.
func measure(ctx context.Context, c *cluster, nodes []string, interval time.Duration) (*stats, error) {
	names := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	for _, n := range nodes {
		names = append(names, n+".kubelet", n+".fakecontainerd")
	}
	first := map[string]procSample{}
	pids := map[string]int{}
	for _, name := range names {
		pid, err := c.pidOf(name)
		if err != nil {
			return nil, fmt.Errorf("pid of %s: %w", name, err)
		}
		s, err := readProc(pid)
		if err != nil {
			return nil, fmt.Errorf("%s (pid %d): %w", name, pid, err)
		}
		pids[name], first[name] = pid, s
	}
	hists := map[string][2]histogram{}
	for _, n := range nodes {
		port, err := c.readOnly(n)
		if err != nil {
			return nil, err
		}
		d, err1 := relistHistogram(ctx, port, "duration")
		iv, err2 := relistHistogram(ctx, port, "interval")
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("node %s: %w", n, err)
		}
		hists[n] = [2]histogram{d, iv}
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(interval):
	}
	elapsed := time.Since(start)
	out := &stats{interval: elapsed}
	stat := func(name string) (procStat, error) {
		s, err := readProc(pids[name])
		if err != nil {
			return procStat{}, fmt.Errorf("%s (pid %d): %w", name, pids[name], err)
		}
		return procStat{name: name, rss: s.rss, pss: s.pss, cpu: 100 * (s.cpu - first[name].cpu).Seconds() / elapsed.Seconds()}, nil
	}
	for _, name := range names[:4] {
		s, err := stat(name)
		if err != nil {
			return nil, err
		}
		out.control = append(out.control, s)
	}
	pods, err := c.pods(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		ns := nodeStat{node: n}
		var err error
		if ns.kubelet, err = stat(n + ".kubelet"); err != nil {
			return nil, err
		}
		if ns.fake, err = stat(n + ".fakecontainerd"); err != nil {
			return nil, err
		}
		port, _ := c.readOnly(n)
		d, err1 := relistHistogram(ctx, port, "duration")
		iv, err2 := relistHistogram(ctx, port, "interval")
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("node %s: %w", n, err)
		}
		ns.relistP99 = d.quantile(hists[n][0], 0.99)
		ns.intervalP99 = iv.quantile(hists[n][1], 0.99)
		ns.relists = d.count[len(d.count)-1] - hists[n][0].count[len(d.count)-1]
		for _, p := range pods {
			if p.Spec.NodeName == n {
				ns.pods++
			}
		}
		out.nodes = append(out.nodes, ns)
	}
	return out, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// fleet is the per-node summary of a measurement: medians over the nodes
// (and the worst node where a median would hide it).
type fleet struct {
	nodes               int
	pods                float64 // mean per node
	kubeletRSS, fakeRSS float64 // MiB, medians
	fakeRSSMax, fakePSS float64 // MiB: the worst node's RSS; the PSS median
	kubeletCPU, fakeCPU float64 // % of one core, mean per node
	worstRelist         float64 // s, the worst node's relist p99
	total               int64   // bytes, every process's RSS
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func (s *stats) fleet() (fleet, bool) {
	f := fleet{nodes: len(s.nodes)}
	if f.nodes == 0 {
		return f, false
	}
	var kr, fr, fp []float64
	for _, p := range s.control {
		f.total += p.rss
	}
	for _, n := range s.nodes {
		kr, fr, fp = append(kr, mib(n.kubelet.rss)), append(fr, mib(n.fake.rss)), append(fp, mib(n.fake.pss))
		f.kubeletCPU += n.kubelet.cpu / float64(f.nodes)
		f.fakeCPU += n.fake.cpu / float64(f.nodes)
		f.pods += float64(n.pods) / float64(f.nodes)
		f.fakeRSSMax = max(f.fakeRSSMax, mib(n.fake.rss))
		if !math.IsNaN(n.relistP99) {
			f.worstRelist = max(f.worstRelist, n.relistP99)
		}
		f.total += n.kubelet.rss + n.fake.rss
	}
	f.kubeletRSS, f.fakeRSS, f.fakePSS = median(kr), median(fr), median(fp)
	return f, true
}

func (s *stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "over %.0fs:\n", s.interval.Seconds())
	fmt.Fprintf(&b, "%-26s %9s %9s %8s\n", "process", "RSS MiB", "PSS MiB", "CPU %")
	for _, p := range s.control {
		fmt.Fprintf(&b, "%-26s %9.0f %9.0f %8.1f\n", p.name, mib(p.rss), mib(p.pss), p.cpu)
	}
	fmt.Fprintf(&b, "\n%-8s %5s %12s %10s %9s %9s %9s %13s %13s\n", "node", "pods", "kubelet MiB", "kubelet %", "fake MiB", "fake PSS", "fake %", "relist p99 s", "interval p99")
	for _, n := range s.nodes {
		fmt.Fprintf(&b, "%-8s %5d %12.0f %10.1f %9.1f %9.1f %9.1f %13.3f %13.3f\n", n.node, n.pods, mib(n.kubelet.rss), n.kubelet.cpu, mib(n.fake.rss), mib(n.fake.pss), n.fake.cpu, n.relistP99, n.intervalP99)
	}
	if f, ok := s.fleet(); ok {
		fmt.Fprintf(&b, "\nfleet: %d nodes; per node kubelet %.0f MiB (median) %.2f%% CPU, fakecontainerd %.1f MiB (median, max %.1f; PSS %.1f) %.2f%% CPU; worst relist p99 %.3fs; all processes %.2f GiB\n",
			f.nodes, f.kubeletRSS, f.kubeletCPU, f.fakeRSS, f.fakeRSSMax, f.fakePSS, f.fakeCPU, f.worstRelist, float64(f.total)/(1<<30))
	}
	return b.String()
}

// fleetHeader and Row are `make bench`'s fleet row, as markdown.
const fleetHeader = "| nodes | pods per node | kubelet RSS per node | fakecontainerd RSS per node (max; PSS) | CPU per node (kubelet + fakecontainerd) | relist p99 (worst node) | all processes |\n|---:|---:|---:|---:|---:|---:|---:|\n"

// Row is the fleet row; "" without nodes.
func (s *stats) Row() string {
	f, ok := s.fleet()
	if !ok {
		return ""
	}
	return fmt.Sprintf("| %d | %.0f | %.0f MiB | %.1f MiB (%.1f; %.1f) | %.2f%% + %.2f%% of a core | %.3g s | %.2f GiB |\n",
		f.nodes, f.pods, f.kubeletRSS, f.fakeRSS, f.fakeRSSMax, f.fakePSS, f.kubeletCPU, f.fakeCPU, f.worstRelist, float64(f.total)/(1<<30))
}
