package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// roleDensity is `cribench density`: one node's worth of pods in
// fakecontainerd alone, no kubelet, and what they cost it.
const roleDensity = "density"

// densityOptions are `cribench density`'s flags.
type densityOptions struct {
	fakecontainerd string
	pods           int
	perPod         int
	workers        int
	settle         time.Duration
	json           bool
	keep           string
	fcdArgs        []string
	progress       io.Writer
}

func parseDensityFlags(args []string, stderr io.Writer) (*densityOptions, error) {
	o := &densityOptions{progress: stderr}
	fs := flag.NewFlagSet("cribench density", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.fakecontainerd, "fakecontainerd", "bin/fakecontainerd", "the fakecontainerd binary to measure")
	fs.IntVar(&o.pods, "pods", 110, "pods to run (kubelet's default maxPods is 110)")
	fs.IntVar(&o.perPod, "per-pod", 1, "containers per pod, started")
	fs.IntVar(&o.workers, "workers", 4, "concurrent workers for the fill")
	fs.DurationVar(&o.settle, "settle", 35*time.Second, "wait after the fill before measuring (an idle node: past the shims' first 30 s return of memory)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of the table")
	fs.StringVar(&o.keep, "keep", "", "write the heap and goroutine profiles into this directory")
	fcdArgs := fs.String("fcd-args", "", "extra flags for `fakecontainerd serve`, space-separated")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := parseCommon(fs, args, quiet, &o.progress); err != nil {
		return nil, err
	}
	if o.settle < 0 {
		return nil, fmt.Errorf("--settle %v: must not be negative", o.settle)
	}
	if err := checkCommon(o.fakecontainerd, []positive{{"pods", o.pods}, {"per-pod", o.perPod}, {"workers", o.workers}}); err != nil {
		return nil, err
	}
	o.fcdArgs = strings.Fields(*fcdArgs)
	return o, nil
}

// densityResult is what one node's pods cost fakecontainerd.
type densityResult struct {
	Command    string  `json:"command"`
	Pods       int     `json:"pods"`
	PerPod     int     `json:"containers_per_pod"`
	RSSEmpty   float64 `json:"rss_empty_mib"`
	RSS        float64 `json:"rss_mib"`
	RSSAnon    float64 `json:"rss_anon_mib"`
	RSSFile    float64 `json:"rss_file_mib"`
	AnonEmpty  float64 `json:"rss_anon_empty_mib"`
	HWM        float64 `json:"peak_rss_mib"`
	HeapInuse  float64 `json:"heap_inuse_mib"`
	HeapAlloc  float64 `json:"heap_alloc_mib"`
	StackInuse float64 `json:"stack_inuse_mib"`
	Sys        float64 `json:"go_sys_mib"`
	Goroutines int     `json:"goroutines"`
	GoroEmpty  int     `json:"goroutines_empty"`
	FillTime   float64 `json:"fill_s"`
	TargetMiB  float64 `json:"target_rss_mib"`
	Met        bool    `json:"met"`
}

// densityTarget is issue 13's figure: a fake node at 110 pods.
const densityTarget = 30.0

// runDensity starts fakecontainerd with its debug endpoint on a socket,
// reads its footprint empty, runs the pods, lets it settle and reads it
// again: RSS from /proc, heap and goroutines from the server's own expvar
// and pprof endpoints.
func runDensity(ctx context.Context, o *densityOptions) (*densityResult, error) {
	dir, err := os.MkdirTemp("", "cribd")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	debugSock := filepath.Join(dir, "debug.sock")
	bo := &options{fakecontainerd: o.fakecontainerd, fcdArgs: append([]string{"--debug-address", debugSock}, o.fcdArgs...)}
	s := &server{name: nameOurs}
	defer s.close()
	if s.proc, err = startOurs(bo, dir); err != nil {
		return nil, err
	}
	if err := s.connect(ctx, 1); err != nil {
		return nil, err
	}
	dbg := debugClient(debugSock)
	res := &densityResult{Pods: o.pods, PerPod: o.perPod, TargetMiB: densityTarget}
	if _, err := s.rt[0].Version(ctx, "v1"); err != nil {
		return nil, err
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	b, err := s.proc.rssBytes()
	if err != nil {
		return nil, err
	}
	res.RSSEmpty = mib(b)
	if b, err = procStatusBytes(s.proc.cmd.Process.Pid, "RssAnon:"); err != nil {
		return nil, err
	}
	res.AnonEmpty = mib(b)
	if res.GoroEmpty, err = goroutines(ctx, dbg); err != nil {
		return nil, err
	}
	o.logf("empty: RSS %.1f MiB, %d goroutines; running %d pods of %d container(s)", res.RSSEmpty, res.GoroEmpty, o.pods, o.perPod)

	start := time.Now()
	if _, err := fillExact(ctx, s, 1, o.pods, func(int) int { return o.perPod }, o.workers, filepath.Join(dir, "pods")); err != nil {
		return nil, err
	}
	res.FillTime = time.Since(start).Seconds()
	o.logf("filled in %.1f s; settling %v", res.FillTime, o.settle)
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if b, err = s.proc.rssBytes(); err != nil {
		return nil, err
	}
	res.RSS = mib(b)
	if b, err = procStatusBytes(s.proc.cmd.Process.Pid, "RssAnon:"); err != nil {
		return nil, err
	}
	res.RSSAnon = mib(b)
	if b, err = procStatusBytes(s.proc.cmd.Process.Pid, "RssFile:"); err != nil {
		return nil, err
	}
	res.RSSFile = mib(b)
	if b, err = s.proc.hwmBytes(); err != nil {
		return nil, err
	}
	res.HWM = mib(b)
	ms, err := memstats(ctx, dbg)
	if err != nil {
		return nil, err
	}
	res.HeapInuse, res.HeapAlloc, res.StackInuse, res.Sys = mib(ms.HeapInuse), mib(ms.HeapAlloc), mib(ms.StackInuse), mib(ms.Sys)
	if res.Goroutines, err = goroutines(ctx, dbg); err != nil {
		return nil, err
	}
	res.Met = res.RSS <= densityTarget
	if o.keep != "" {
		if err := os.MkdirAll(o.keep, 0o755); err != nil {
			return nil, err
		}
		for name, path := range map[string]string{"heap.pb.gz": "/debug/pprof/heap", "goroutine.txt": "/debug/pprof/goroutine?debug=1"} {
			data, err := debugGet(ctx, dbg, path)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(o.keep, name), data, 0o644); err != nil {
				return nil, err
			}
		}
		o.logf("profiles in %s", o.keep)
	}
	return res, nil
}

func (o *densityOptions) logf(format string, args ...any) {
	fmt.Fprintf(o.progress, "cribench density: "+format+"\n", args...)
}

// debugClient speaks HTTP to the debug endpoint's unix socket.
func debugClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}, Timeout: 30 * time.Second}
}

func debugGet(ctx context.Context, c *http.Client, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://debug"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("debug endpoint %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("debug endpoint %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("debug endpoint %s: %s", path, resp.Status)
	}
	return data, nil
}

type goMemStats struct {
	HeapInuse, HeapAlloc, StackInuse, Sys int64
}

// memstats reads runtime.MemStats from /debug/vars (expvar's "memstats").
func memstats(ctx context.Context, c *http.Client) (*goMemStats, error) {
	data, err := debugGet(ctx, c, "/debug/vars")
	if err != nil {
		return nil, err
	}
	var vars struct {
		Memstats *goMemStats `json:"memstats"`
	}
	if err := json.Unmarshal(data, &vars); err != nil {
		return nil, fmt.Errorf("/debug/vars: %w", err)
	}
	if vars.Memstats == nil {
		return nil, fmt.Errorf("/debug/vars has no memstats")
	}
	return vars.Memstats, nil
}

// goroutines is the total on the first line of the goroutine profile
// ("goroutine profile: total N").
func goroutines(ctx context.Context, c *http.Client) (int, error) {
	data, err := debugGet(ctx, c, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	line, _, _ := bufio.NewReader(strings.NewReader(string(data))).ReadLine()
	v, ok := strings.CutPrefix(string(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile: odd first line %q", line)
	}
	return strconv.Atoi(v)
}

// writeDensityTable prints the result as a markdown table.
func writeDensityTable(w io.Writer, r *densityResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", r.Command)
	fmt.Fprintf(&b, "fakecontainerd alone (no kubelet), %d pods of %d started container(s), filled in %.1f s:\n\n", r.Pods, r.PerPod, r.FillTime)
	b.WriteString("| metric | empty | with the pods | per pod | target | met? |\n|---|---:|---:|---:|---|---|\n")
	per := func(full, empty float64) float64 { return (full - empty) / float64(r.Pods) }
	met := "no"
	if r.Met {
		met = "yes"
	}
	fmt.Fprintf(&b, "| RSS | %.1f MiB | %.1f MiB | %.0f KiB | ≤ %.0f MiB | %s |\n", r.RSSEmpty, r.RSS, per(r.RSS, r.RSSEmpty)*1024, r.TargetMiB, met)
	fmt.Fprintf(&b, "| of it anonymous (heap, stacks, runtime) | %.1f MiB | %.1f MiB | %.0f KiB | - |  |\n", r.AnonEmpty, r.RSSAnon, per(r.RSSAnon, r.AnonEmpty)*1024)
	fmt.Fprintf(&b, "| of it file-backed (the binary, bbolt's mmap) | - | %.1f MiB | - | - |  |\n", r.RSSFile)
	fmt.Fprintf(&b, "| peak RSS (VmHWM) | - | %.1f MiB | - | - |  |\n", r.HWM)
	fmt.Fprintf(&b, "| Go heap in use | - | %.1f MiB (live %.1f) | - | - |  |\n", r.HeapInuse, r.HeapAlloc)
	fmt.Fprintf(&b, "| goroutine stacks | - | %.1f MiB | - | - |  |\n", r.StackInuse)
	fmt.Fprintf(&b, "| goroutines | %d | %d | %.1f | - |  |\n", r.GoroEmpty, r.Goroutines, per(float64(r.Goroutines), float64(r.GoroEmpty)))
	_, err := io.WriteString(w, b.String())
	return err
}

// density is `cribench density [flags]`.
func density(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseDensityFlags(args, stderr)
	if err != nil {
		return err
	}
	res, err := runDensity(ctx, o)
	if err != nil {
		return err
	}
	res.Command = "cribench density " + strings.Join(args, " ")
	if o.json {
		return writeJSON(stdout, res)
	}
	return writeDensityTable(stdout, res)
}
