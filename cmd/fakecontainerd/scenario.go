package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/scenario"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// scenarioCommands are `scenario`, `ab` and `pleg-watch`.
func scenarioCommands() []*cli.Command {
	return []*cli.Command{scenarioCommand(), abCommand(), plegWatchCommand()}
}

func scenarioCommand() *cli.Command {
	return &cli.Command{
		Name:  "scenario",
		Usage: "list and show the built-in incident scenarios",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "one line per built-in scenario",
				Action: func(c *cli.Context) error {
					tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
					for _, name := range configs.ScenarioNames() {
						f, err := scenario.Load(name)
						if err != nil {
							return err
						}
						fmt.Fprintf(tw, "%s\t%s\n", name, f.Summary)
					}
					return tw.Flush()
				},
			},
			{
				Name:      "show",
				Usage:     "print a scenario file (built-in name or path), after checking it",
				ArgsUsage: "NAME|FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("scenario show: want one NAME or FILE (see `fakecontainerd scenario list`)")
					}
					arg := c.Args().First()
					if _, err := scenario.Load(arg); err != nil {
						return err
					}
					data, err := configs.ScenarioFile(arg)
					if err != nil {
						if data, err = os.ReadFile(arg); err != nil {
							return err
						}
					}
					_, err = c.App.Writer.Write(data)
					return err
				},
			},
		},
	}
}

func abCommand() *cli.Command {
	return &cli.Command{
		Name:  "ab",
		Usage: "run a scenario's variants side by side, each on its own in-process server, and compare",
		Description: `Each variant gets its own fakecontainerd on its own socket; all run at once
under a kubelet-like driver (PLEG relists, the older CPU manager's updates).
One table (or --json) reports, per variant, in the scenario's real-world
seconds: PLEG health, the longest time without a successful relist, the
worst relist, ListContainers and UpdateContainerResources, containers seen
UNKNOWN, and the errors callers saw. The exit status is 1 when any variant
misses an expectation of the scenario file.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "scenario", Aliases: []string{"s"}, Required: true, Usage: "a built-in scenario's `NAME` (fakecontainerd scenario list shows them) or a scenario file's path"},
			&cli.StringFlag{Name: "variants", DefaultText: "all", Usage: "comma-separated variants to run"},
			&cli.Float64Flag{Name: "time-scale", DefaultText: "the scenario's", Usage: "wall seconds per scenario second"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of the table"},
			&cli.StringFlag{Name: "report", Usage: "also write a self-contained HTML report (timelines, table, blame chains) to `DIR`/<scenario>-<time>.html"},
			&cli.IntFlag{Name: "parallel", DefaultText: "all", Usage: "variants run at once; fewer on a busy machine"},
			&cli.StringFlag{Name: "log-level", Value: "off", Usage: `servers' and drivers' log level on stderr: "off", or trace, debug, info, warn, error`},
		},
		Action: runAB,
	}
}

func runAB(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
	}
	f, err := scenario.Load(c.String("scenario"))
	if err != nil {
		return err
	}
	o := scenario.Options{}
	if v := c.String("variants"); v != "" {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				o.Variants = append(o.Variants, name)
			}
		}
	}
	if c.IsSet("time-scale") {
		o.TimeScale = c.Float64("time-scale")
		if _, err := clock.New(o.TimeScale); err != nil {
			return fmt.Errorf("--time-scale: %w", err)
		}
	}
	if o.Parallel = c.Int("parallel"); o.Parallel < 0 {
		return fmt.Errorf("--parallel %d: must not be negative", o.Parallel)
	}
	log, err := abLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	o.Log = log
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := scenario.Run(ctx, f, o)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		err = rep.WriteJSON(c.App.Writer)
	} else {
		err = rep.WriteTable(c.App.Writer)
	}
	if err != nil {
		return err
	}
	if dir := c.String("report"); dir != "" {
		path, err := writeHTMLReport(rep, dir, time.Now())
		if err != nil {
			return err
		}
		// With --json, stdout is one JSON object: the path goes to stderr.
		out := c.App.Writer
		if c.Bool("json") {
			out = c.App.ErrWriter
		}
		fmt.Fprintf(out, "report: %s\n", path)
	}
	var failed []string
	for _, v := range rep.Variants {
		if !v.ExpectationsMet() {
			failed = append(failed, v.Name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenario %s: expectations not met in %s", f.Name, strings.Join(failed, ", "))
	}
	return nil
}

// abLogger is the runs' logger; what the ttrpc library logs goes to it at
// debug level (shim.RouteLibraryLog).
func abLogger(level string) (*logrus.Entry, error) {
	log := newLogger()
	entry := logrus.NewEntry(log)
	shim.RouteLibraryLog(entry)
	if level == "off" {
		log.SetOutput(io.Discard)
		return entry, nil
	}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf(`--log-level %q: want "off", trace, debug, info, warn or error`, level)
	}
	log.SetLevel(lvl)
	return entry, nil
}

func plegWatchCommand() *cli.Command {
	return &cli.Command{
		Name:  "pleg-watch",
		Usage: "relist any CRI runtime the way kubelet's PLEG does and report relist durations and health",
		Description: `Runs kubelet's generic PLEG against a CRI endpoint (a real containerd too),
in real time: ListPodSandbox + ListContainers every --period, then the status
calls for every changed pod, each call with --timeout. Prints every relist's
duration and each health transition as kubelet would judge it. With
--per-container, also probes every container on its own deadlines: each round
calls ContainerStatus on every container of the last list that answered, in
parallel and each with --per-container-timeout, while a new ListContainers
(with the same deadline) runs beside them; it names the containers whose
status does not answer. So when ListContainers itself hangs on one
container's status lock (incident 1), the round still ends in time and names
that container. Only CRI calls: it works on a real containerd alike.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "endpoint", Aliases: []string{"r"}, Required: true, Usage: "CRI endpoint, unix:///path.sock (or a plain socket path)"},
			&cli.DurationFlag{Name: "period", Value: scenario.DefaultRelistPeriod, Usage: "relist period (kubelet: 1s)"},
			&cli.DurationFlag{Name: "threshold", Value: scenario.DefaultRelistThreshold, Usage: "PLEG health threshold (kubelet: 3m)"},
			&cli.DurationFlag{Name: "timeout", Value: scenario.DefaultRuntimeRequestTimeout, Usage: "deadline of every CRI call (kubelet's runtime request timeout: 2m)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (0: until interrupted)"},
			&cli.BoolFlag{Name: "per-container", Usage: "also time ContainerStatus of each container and name the ones that hang"},
			&cli.DurationFlag{Name: "per-container-timeout", Value: 10 * time.Second, Usage: "how long a container's ContainerStatus may take before it counts as hung"},
		},
		Action: plegWatch,
	}
}

func plegWatch(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
	}
	for _, name := range []string{"period", "threshold", "timeout", "per-container-timeout"} {
		if c.Duration(name) <= 0 {
			return fmt.Errorf("--%s %v: must be positive", name, c.Duration(name))
		}
	}
	if c.Duration("duration") < 0 {
		return fmt.Errorf("--duration %v: must not be negative", c.Duration("duration"))
	}
	endpoint := c.String("endpoint")
	target := endpoint
	if !strings.Contains(target, "://") {
		target = "unix://" + target
	}
	if !strings.HasPrefix(target, "unix://") {
		return fmt.Errorf("--endpoint %q: want unix:///path.sock", endpoint)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// kubelet's CRI client accepts 16 MiB messages; a node's
		// ListContainers can exceed gRPC's 4 MiB default.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return fmt.Errorf("--endpoint %q: %w", endpoint, err)
	}
	defer conn.Close()

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	out := &lineWriter{w: c.App.Writer}
	log := newLogger()
	log.SetOutput(io.Discard)
	clk := clock.Real()
	cfg := scenario.DriverConfig{
		RelistPeriod: c.Duration("period"), RelistThreshold: c.Duration("threshold"), RuntimeRequestTimeout: c.Duration("timeout"),
	}
	drv := scenario.NewDriver(conn, clk, logrus.NewEntry(log), cfg, scenario.Hooks{
		Relist: func(r scenario.Relist) {
			switch {
			case r.Err != nil:
				out.printf("relist %d: %v FAILED (relist time not updated): %v", r.N, r.Took.Round(time.Millisecond), r.Err)
			case r.FailedInspections > 0:
				out.printf("relist %d: %v (%d pods, %d containers, %d changed, %d reinspected, %d inspections failed: %v)",
					r.N, r.Took.Round(time.Millisecond), r.Pods, r.Containers, r.Changed, r.Reinspected, r.FailedInspections, r.FirstInspectionError)
			default:
				out.printf("relist %d: %v (%d pods, %d containers, %d changed, %d reinspected)",
					r.N, r.Took.Round(time.Millisecond), r.Pods, r.Containers, r.Changed, r.Reinspected)
			}
		},
		Health: func(h scenario.HealthEvent) { out.printf("%s", h.Message) },
	})
	out.printf("pleg-watch %s: relist every %v, threshold %v, call timeout %v", endpoint, cfg.RelistPeriod, cfg.RelistThreshold, cfg.RuntimeRequestTimeout)

	// The run ends when ctx does; the driver and the prober get their own
	// context so that the statistics are taken before their calls are
	// cancelled (a call cut short by the end is not the runtime's doing).
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var prober *scenario.Prober
	var wg sync.WaitGroup
	if c.Bool("per-container") {
		// The prober's own list has the probes' short deadline, not
		// kubelet's: a list that hangs must not hold up the naming.
		probeTimeout := c.Duration("per-container-timeout")
		prober = scenario.NewProber(conn, clk, probeTimeout, probeTimeout)
		wg.Add(1)
		go func() {
			defer wg.Done()
			listFailing := false
			for runCtx.Err() == nil {
				r := prober.Round(runCtx)
				if runCtx.Err() != nil {
					return
				}
				// The list's failures and recovery are told once each,
				// not every round.
				switch {
				case r.ListErr != nil && listFailing:
				case r.ListErr != nil && len(r.Probes) == 0:
					out.printf("per-container: ListContainers gave no list within %v (%v); no list has answered yet, nothing to probe", probeTimeout, r.ListErr)
				case r.ListErr != nil:
					out.printf("per-container: ListContainers gave no list within %v (%v); probing the %d containers of the last list that answered", probeTimeout, r.ListErr, len(r.Probes))
				case listFailing:
					out.printf("per-container: ListContainers answers again")
				}
				listFailing = r.ListErr != nil
				for _, pr := range r.NewlyHung {
					out.printf("per-container: ContainerStatus of %s hangs: no answer within %v", describe(pr), probeTimeout)
				}
				for _, pr := range r.Recovered {
					out.printf("per-container: ContainerStatus of %s answers again (%v)", describe(pr), pr.Took.Round(time.Millisecond))
				}
				if clk.Sleep(runCtx, cfg.RelistPeriod) != nil {
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		drv.Run(runCtx)
	}()
	<-ctx.Done()
	s := drv.Stats(true)
	var hung []scenario.ContainerProbe
	if prober != nil {
		hung = prober.Hung()
	}
	cancel()
	wg.Wait()

	verdict := "healthy throughout"
	if !s.Healthy() {
		verdict = "NOT healthy at times"
	}
	out.printf("summary: %d relists (%d failed), worst relist %v, worst ListContainers %v, longest without a successful relist %v: PLEG %s",
		s.Relists, s.FailedRelists, s.MaxRelist.Round(time.Millisecond), s.Max("ListContainers").Round(time.Millisecond),
		s.MaxPLEGLastSeen.Round(time.Millisecond), verdict)
	if prober != nil {
		if len(hung) == 0 {
			out.printf("summary: no container's ContainerStatus hung in the last round")
		}
		for _, pr := range hung {
			out.printf("summary: ContainerStatus of %s hangs", describe(pr))
		}
	}
	return nil
}

// describe names a container for people: short id and pod/name.
func describe(pr scenario.ContainerProbe) string {
	id := pr.ID
	if len(id) > 12 {
		id = id[:12]
	}
	if pr.Pod == "" {
		return fmt.Sprintf("%s (%s)", id, pr.Name)
	}
	return fmt.Sprintf("%s (%s/%s/%s)", id, pr.Namespace, pr.Pod, pr.Name)
}

// lineWriter prints timestamped lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// writeHTMLReport writes rep's HTML report into dir (made if missing) as
// <scenario>-<timestamp>.html and returns its path.
func writeHTMLReport(rep *scenario.Report, dir string, now time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("--report: %w", err)
	}
	// A scenario given as a file may be named anything; keep the file
	// name to letters, digits, '-' and '_'.
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, rep.Scenario)
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.html", name, now.Format("20060102-150405")))
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("--report: %w", err)
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return "", fmt.Errorf("--report: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("--report: %w", err)
	}
	return path, nil
}
