// Command cribench is fakecontainerd's CRI load benchmark (`make bench`).
//
// It talks to every server under test only through the CRI gRPC API on a
// unix socket, with the client kubelet and crictl use (k8s.io/cri-client's
// remote runtime, one gRPC connection per client), and runs the same
// workload in the same run against three servers, each a separate process
// so that RSS is the server's alone and the client's CPU is not the
// server's:
//
//   - fakecontainerd: the built binary (--fakecontainerd), default config,
//     in a temp root and state;
//   - peer: the fake gRPC runtime kubelet's own tests use
//     (k8s.io/cri-client/pkg/fake), hosted by cribench itself re-executed
//     in the hidden serve-peer mode;
//   - floor: cribench re-executed in the hidden serve-floor mode: the same
//     kind of socket answering Version and returning, for every
//     ListContainers, a pre-built response identical to fakecontainerd's
//     (everything else is Unimplemented). No CRI server can answer a list
//     faster than that.
//
// Workload, at each N of --n: fill N containers (10 per pod, started), then
// ListContainers and ListPodSandbox p50/p99 with one client and with 16
// concurrent clients, ContainerStatus p50, ListContainers filtered by pod
// UID label (what kubelet sends per changed pod), with fakecontainerd's
// list_index fix off and then on, lifecycle throughput (runp+create+start,
// then stop+rm and stopp+rmp) and the servers' RSS after the fill.
// Single-client calls rotate between the servers call by call, so load from
// elsewhere on the machine falls on all of them alike.
//
// It prints a markdown table (metric | fakecontainerd | peer | floor |
// ours/peer | target | met?), or with --json one JSON object with the same
// figures. Targets are reported, not asserted: the exit status is 0 unless
// the benchmark itself failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && isRole(os.Args[1]) {
		if err := serveRole(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "cribench %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == roleDensity {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := density(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		if err == flag.ErrHelp {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cribench density: %v\n", err)
			os.Exit(1)
		}
		return
	}
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return
		}
		fmt.Fprintf(os.Stderr, "cribench: %v\n", err)
		os.Exit(2)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cribench: %v\n", err)
		os.Exit(1)
	}
	opts.self = []string{exe}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cribench: %v\n", err)
		os.Exit(1)
	}
	res.Command = "cribench " + strings.Join(os.Args[1:], " ")
	if opts.json {
		err = writeJSON(os.Stdout, res)
	} else {
		err = writeTable(os.Stdout, res)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cribench: %v\n", err)
		os.Exit(1)
	}
}

// options are cribench's flags.
type options struct {
	fakecontainerd string
	json           bool
	ns             []int
	perPod         int
	iters          int
	clients        int
	clientIters    int
	statusIters    int
	filterIters    int
	lifecyclePods  int
	workers        int
	fcdArgs        []string
	progress       io.Writer
	// self runs this program again (argv prefix) for serve-peer and
	// serve-floor: the executable, or a test binary.
	self []string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{progress: stderr}
	fs := flag.NewFlagSet("cribench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.fakecontainerd, "fakecontainerd", "bin/fakecontainerd", "the fakecontainerd binary to benchmark")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of the table")
	nList := fs.String("n", "1000,10000", "container counts to fill, comma-separated")
	fs.IntVar(&o.perPod, "per-pod", 10, "containers per pod in the fill")
	fs.IntVar(&o.iters, "iters", 200, "single-client calls per server and list metric")
	fs.IntVar(&o.clients, "clients", 16, "concurrent clients (one gRPC connection each)")
	fs.IntVar(&o.clientIters, "client-iters", 50, "calls per concurrent client and metric")
	fs.IntVar(&o.statusIters, "status-iters", 200, "ContainerStatus calls per server")
	fs.IntVar(&o.filterIters, "filter-iters", 200, "filtered ListContainers calls per server and mode")
	fs.IntVar(&o.lifecyclePods, "lifecycle-pods", 100, "pods run and removed in the lifecycle throughput")
	fs.IntVar(&o.workers, "workers", 16, "concurrent workers for the fill and the lifecycle")
	fcdArgs := fs.String("fcd-args", "", "extra flags for `fakecontainerd serve`, space-separated (e.g. --debug-address 127.0.0.1:6060)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := parseCommon(fs, args, quiet, &o.progress); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*nList, ",") {
		s = strings.TrimSpace(strings.ReplaceAll(s, "_", ""))
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--n: %q is not a positive count", s)
		}
		o.ns = append(o.ns, n)
	}
	if len(o.ns) == 0 {
		return nil, fmt.Errorf("--n: name at least one count")
	}
	if err := checkCommon(o.fakecontainerd, []positive{{"per-pod", o.perPod}, {"iters", o.iters}, {"clients", o.clients}, {"client-iters", o.clientIters},
		{"status-iters", o.statusIters}, {"filter-iters", o.filterIters}, {"lifecycle-pods", o.lifecyclePods}, {"workers", o.workers}}); err != nil {
		return nil, err
	}
	o.fcdArgs = strings.Fields(*fcdArgs)
	return o, nil
}

// parseCommon parses a cribench command's flags: no operands, and --quiet
// sends the progress nowhere.
func parseCommon(fs *flag.FlagSet, args []string, quiet *bool, progress *io.Writer) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quiet {
		*progress = io.Discard
	}
	return nil
}

// positive is a count flag that must be above 0.
type positive struct {
	name string
	v    int
}

// checkCommon refuses a count that is not positive and a binary that is
// not there, naming the flag.
func checkCommon(fakecontainerd string, counts []positive) error {
	for _, c := range counts {
		if c.v <= 0 {
			return fmt.Errorf("--%s %d: must be positive", c.name, c.v)
		}
	}
	if _, err := os.Stat(fakecontainerd); err != nil {
		return fmt.Errorf("--fakecontainerd: %w (run `make build` first)", err)
	}
	return nil
}

func (o *options) logf(format string, args ...any) {
	fmt.Fprintf(o.progress, "cribench: "+format+"\n", args...)
}
