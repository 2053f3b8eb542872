package scenario

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"google.golang.org/grpc/codes"

	"github.com/fakecontainerd/fakecontainerd/faults"
)

// syntheticReport is one unhealthy variant: a long unmount, a 2 min
// status-lock hold behind it, a ListContainers stuck on it, a relist over
// the threshold, and many short calls to merge.
func syntheticReport() *Report {
	s := time.Second
	tl := &Timeline{
		Duration: 300 * s, Threshold: 180 * s,
		Unmounts:  []UnmountSpan{{Container: "c0ffee0000000000", From: 10 * s, To: 250 * s}},
		Locks:     []LockSpan{{Container: "c0ffee0000000000", Op: "UpdateContainerResources", From: 20 * s, To: 140 * s}},
		Unhealthy: []Window{{From: 200 * s, To: 260 * s}},
		Blame:     []BlameChain{{Chain: "ListContainers waits on the status lock of container c0ffee00, held 1m0s by UpdateContainerResources.", Count: 7, First: 30 * s, Last: 60 * s, LongestHeld: time.Minute}},
	}
	tl.Calls = append(tl.Calls, CallSpan{Method: "ListContainers", Start: 21 * s, End: 141 * s},
		CallSpan{Method: "UpdateContainerResources", Start: 20 * s, End: 140 * s, Code: codes.DeadlineExceeded})
	tl.Relists = append(tl.Relists, RelistSpan{Start: 21 * s, End: 215 * s, OK: true})
	for i := range 2000 {
		at := 150*s + time.Duration(i)*50*time.Millisecond
		tl.Calls = append(tl.Calls, CallSpan{Method: "ListContainers", Start: at, End: at + time.Millisecond})
		tl.Relists = append(tl.Relists, RelistSpan{Start: at, End: at + 2*time.Millisecond, OK: true})
	}
	tl.Containers = map[string]ContainerInfo{
		"c0ffee0000000000": {Pod: "job-1", Name: "c1", Exits: true, ExitAt: 10 * s, ExitCode: 137},
	}
	stats := Stats{Threshold: 180 * s, MaxPLEGLastSeen: 230 * s, MaxRelist: 194 * s, Calls: map[string]CallStats{"ListContainers": {Max: 120 * s}}}
	healthy := &Timeline{
		Duration: 300 * s, Threshold: 180 * s,
		Blame: []BlameChain{{
			Chain:  "shim State waits on the process lock of container c0ffee00, held 6m7s by shim Delete, unmounting rootfs without volatile (2.0 GiB dirty).",
			Holder: "shim Delete, unmounting rootfs without volatile (2.0 GiB dirty)", Waiters: []string{"shim State"},
			Count: 3, First: 30 * s, Last: 60 * s, LongestHeld: 367 * s,
		}},
		Containers: tl.Containers,
	}
	return &Report{Scenario: "synthetic", Summary: "incident 0: a synthetic stall", Description: "A scenario made up for the test.", TimeScale: 0.01, Variants: []VariantResult{
		{Name: "baseline", Stats: stats, Timeline: tl},
		{Name: "volatile", Description: "the overlay mounted volatile", Fixes: []faults.Fix{faults.FixVolatile}, Stats: Stats{Threshold: 180 * s, MaxPLEGLastSeen: 2 * s}, Timeline: healthy},
		{Name: "stuck", Stats: Stats{Threshold: 180 * s, MaxPLEGLastSeen: 200 * s}, Timeline: &Timeline{
			Duration: 300 * s, Threshold: 180 * s,
			Blame: []BlameChain{{
				Chain:  "ContainerStatus (3 callers) waits inside fault f1 (container.status block) on container c0ffee00, held up to 7m38s.",
				Holder: "fault f1 (container.status block) on container c0ffee00", Waiters: []string{"ContainerStatus (up to 3 callers)"},
				Count: 90, First: 15 * s, Last: 290 * s, LongestHeld: 458 * s,
			}},
			Containers: tl.Containers,
		}},
		{Name: "broken", Err: context.Canceled},
	}}
}

func TestWriteHTML(t *testing.T) {
	var buf bytes.Buffer
	if err := syntheticReport().WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	doc, err := html.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	var texts []string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			count[n.Data]++
		}
		if n.Type == html.TextNode {
			texts = append(texts, n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	all := strings.Join(texts, " ")
	if count["svg"] != 3 || count["rect"] < 6 || count["polyline"] != 3 || count["table"] < 4 {
		t.Errorf("elements %v: want three svgs with rects and the age line, the A/B and blame tables", count)
	}
	// Calls held in a fault are CRI calls waiting: the page must not say
	// only the shim's calls waited.
	if want := "Longest hold blame saw: 458.0 s, by fault f1 (container.status block) on container c0ffee00 (job-1/c1); waiting on it: ContainerStatus (up to 3 callers)."; !strings.Contains(all, want) {
		t.Errorf("report text lacks %q", want)
	}
	for _, want := range []string{
		"PLEG threshold 180.0 s", "PLEG unhealthy", "UpdateContainerResources 120.0 s",
		"ListContainers", "did not run", "held 1m0s by UpdateContainerResources", "60 s", "UNHEALTHY",
		// What the scenario and each variant are.
		"incident 0: a synthetic stall", "A scenario made up for the test.", "the overlay mounted volatile",
		"No fix switched on", faults.FixVolatile.Info().Upstream, faults.FixVolatile.Info().Cost,
		// Container lanes by pod/container, with the id, the one that died marked.
		"job-1/c1", "c0ffee000000, died (exit 137)", "exit 137",
		// Chains name containers; a healthy variant's longest hold says what held.
		"container c0ffee00 (job-1/c1)",
		"Longest hold blame saw: 367.0 s, by shim Delete, unmounting rootfs without volatile (2.0 GiB dirty); waiting on it: shim State. No CRI call waited on a status lock",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("report text lacks %q", want)
		}
	}
	// The threshold line, the unmount and the deadline's colour.
	for _, want := range []string{`stroke="` + colThreshold + `"`, `stroke-dasharray="8 5"`, `fill="` + colUnmount + `"`, `fill="` + colDeadline + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %s", want)
		}
	}
	// A legend under each chart, with the relist bars' colours in it.
	if n := strings.Count(out, `<ul class="key">`); n != 3 {
		t.Errorf("%d chart legends, want one per chart (3)", n)
	}
	for _, want := range []string{`background:` + colRelistOK + `"></span>relist:`, `background:` + colUpdateErr + `"></span>relist whose GetPods failed`} {
		if !strings.Contains(out, want) {
			t.Errorf("legend lacks %s", want)
		}
	}
	// 2,000 short calls and relists, 50 ms apart, merge into a few bands.
	if count["rect"] > 200 {
		t.Errorf("%d rects: short calls were not merged", count["rect"])
	}
	if strings.Contains(out, "<script") || strings.Contains(out, "http://") && !strings.Contains(out, "http://www.w3.org/2000/svg") {
		t.Error("report is not self-contained")
	}
}

// TestAxisLabelClearsFirstTick: the time axis' name is drawn below the
// tick labels, so it cannot run into the first one ("0 s").
func TestAxisLabelClearsFirstTick(t *testing.T) {
	c, _ := drawTimeline(syntheticReport().Variants[0].Timeline)
	var axis, first *svgText
	for i, tx := range c.Texts {
		switch {
		case strings.HasPrefix(tx.Text, "scenario time"):
			axis = &c.Texts[i]
		case tx.Text == "0 s" && tx.Anchor == "middle" && first == nil:
			first = &c.Texts[i]
		}
	}
	if axis == nil || first == nil {
		t.Fatalf("axis label %v, first tick %v", axis, first)
	}
	if axis.Y-axis.Size <= first.Y {
		t.Errorf("axis label at y %.0f (size %.0f) overlaps the first tick's line at y %.0f", axis.Y, axis.Size, first.Y)
	}
	if axis.Y > c.Height {
		t.Errorf("axis label at y %.0f is below the chart (height %.0f)", axis.Y, c.Height)
	}
}

// TestBlameGroupsNearDuplicates: samples of one chain that differ in who
// waits (which operations, how many callers) and in durations are one row,
// which keeps every waiter with its most callers; another lock or holder
// is another row.
func TestBlameGroupsNearDuplicates(t *testing.T) {
	r := newTimelineRecorder()
	t0 := time.Now()
	r.begin(t0)
	r.sawChains(t0.Add(5*time.Second), []string{
		"shim State waits on the process lock of container bed51c50, held 6.3s by shim Delete, unmounting rootfs without volatile (2.0 GiB dirty).",
		"ListContainers waits on the status lock of container bed51c50, held 946ms by UpdateContainerResources, which waits on shim State, which waits on the process lock, held 6.3s by shim Delete, unmounting rootfs without volatile (2.0 GiB dirty).",
	})
	r.sawChains(t0.Add(10*time.Second), []string{
		"shim State (8 callers), shim Update, shim Wait (7 callers) and shim Kill (7 callers) wait on the process lock of container bed51c50, held 4m14s by shim Delete, unmounting rootfs without volatile (2.0 GiB dirty).",
		"shim State, shim Wait and shim Kill wait on the process lock of container 47470421, held 41.1s by shim Delete, unmounting rootfs without volatile (2.0 GiB dirty).",
	})
	r.sawChains(t0.Add(15*time.Second), []string{
		"shim State (10 callers), shim Update (2 callers), shim Wait (8 callers) and shim Kill (8 callers) wait on the process lock of container bed51c50, held 6m41s by shim Delete, unmounting rootfs without volatile (2.0 GiB dirty).",
	})
	r.finish(Stats{}, 0)
	bl := r.result().Blame
	if len(bl) != 3 {
		for _, b := range bl {
			t.Logf("row: %+v", b)
		}
		t.Fatalf("%d rows, want 3 (process lock of bed51c50, its status lock, process lock of 47470421)", len(bl))
	}
	var row *BlameChain
	for i := range bl {
		if strings.Contains(bl[i].Chain, "process lock of container bed51c50") {
			row = &bl[i]
		}
	}
	if row == nil {
		t.Fatalf("no row for bed51c50's process lock: %+v", bl)
	}
	want := []string{"shim State (up to 10 callers)", "shim Update (up to 2 callers)", "shim Wait (up to 8 callers)", "shim Kill (up to 8 callers)"}
	if row.Count != 3 || row.LongestHeld != 6*time.Minute+41*time.Second || strings.Join(row.Waiters, "; ") != strings.Join(want, "; ") ||
		row.Holder != "shim Delete, unmounting rootfs without volatile (2.0 GiB dirty)" || row.First != 5*time.Second || row.Last != 15*time.Second {
		t.Errorf("row %+v: want 3 samples from 5 s to 15 s, held 6m41s by shim Delete, waiters %q", *row, want)
	}
}

func TestNormalizeChain(t *testing.T) {
	a := "ListContainers (3 callers) waits on the status lock of container fadda516, held 7.7s by UpdateContainerResources, which waits on the process lock, held 1m2s by shim Delete."
	b := "ListContainers (5 callers) waits on the status lock of container fadda516, held 1m9s by UpdateContainerResources, which waits on the process lock, held 2m0s by shim Delete."
	if normalizeChain(a) != normalizeChain(b) {
		t.Errorf("%q != %q", normalizeChain(a), normalizeChain(b))
	}
	if got, by := longestHeld(b); got != 2*time.Minute || by != "shim Delete" {
		t.Errorf("longestHeld = %v by %q, want 2m0s by shim Delete", got, by)
	}
	for _, tc := range []struct {
		chain, by string
		held      time.Duration
	}{
		{"ListContainers waits on the status lock of container c0ffee00, held 5.2s by UpdateContainerResources, inside fault f1 (status.fsync block) for 4.3s.",
			"UpdateContainerResources, inside fault f1 (status.fsync block) for 4.3s", 5200 * time.Millisecond},
		{"ContainerStatus (2 callers) waits inside fault f1 (container.status block) on container 14680daf, held up to 2m3s.",
			"fault f1 (container.status block) on container 14680daf", 2*time.Minute + 3*time.Second},
		{"UpdateContainerResources waits inside fault f1 (status.fsync block) on container dc415943, held up to 4.7s, holding the status lock of container dc415943.",
			"fault f1 (status.fsync block) on container dc415943", 4700 * time.Millisecond},
	} {
		if held, by := longestHeld(tc.chain); held != tc.held || by != tc.by {
			t.Errorf("longestHeld(%q) = %v by %q, want %v by %q", tc.chain, held, by, tc.held, tc.by)
		}
	}
	r := newTimelineRecorder()
	t0 := time.Now()
	r.begin(t0)
	r.sawChains(t0.Add(5*time.Second), []string{a})
	r.sawChains(t0.Add(10*time.Second), []string{b})
	r.finish(Stats{}, 0)
	bl := r.result().Blame
	if len(bl) != 1 || bl[0].Count != 2 || bl[0].Chain != b || bl[0].First != 5*time.Second || bl[0].Last != 10*time.Second {
		t.Errorf("blame = %+v", bl)
	}
}

// TestRunnerTimeline runs incident 1's baseline alone and checks that the
// report draws the incident: the unmount, the status-lock holds, the
// stuck calls, relists and the unhealthy window.
func TestRunnerTimeline(t *testing.T) {
	f, err := Load("umount-status-lock")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), f, Options{Log: testLog(), Variants: []string{"baseline"}})
	if err != nil {
		t.Fatal(err)
	}
	tl := rep.Variants[0].Timeline
	if tl == nil {
		t.Fatal("no timeline")
	}
	if len(tl.Unmounts) == 0 || len(tl.Locks) == 0 || len(tl.Relists) == 0 || len(tl.Calls) == 0 {
		t.Fatalf("timeline: %d unmounts, %d holds, %d relists, %d calls", len(tl.Unmounts), len(tl.Locks), len(tl.Relists), len(tl.Calls))
	}
	var longHold bool
	for _, h := range tl.Locks {
		longHold = longHold || h.To-h.From > time.Minute && h.Op == "UpdateContainerResources"
	}
	if !longHold {
		t.Error("no status-lock hold over a minute by UpdateContainerResources")
	}
	if len(tl.Blame) == 0 {
		t.Error("no blame chain sampled")
	}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `fill="`+colUnmount+`"`) {
		t.Error("report draws no unmount")
	}
}

// TestReportScreenshot checks a headless browser's screenshot of a report
// (make report-check takes it): a PNG with more than a blank page in it.
// Skipped unless FCD_REPORT_PNG names the file.
func TestReportScreenshot(t *testing.T) {
	path := os.Getenv("FCD_REPORT_PNG")
	if path == "" {
		t.Skip("FCD_REPORT_PNG not set (make report-check)")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() < 1000 || b.Dy() < 1000 {
		t.Fatalf("screenshot is %v", b)
	}
	// Count distinct colours on a grid: a blank or error page has a
	// handful, the report's lanes and text many.
	seen := map[[3]uint32]bool{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 12, g >> 12, bl >> 12}] = true
			if r>>8 < 240 || g>>8 < 240 || bl>>8 < 240 {
				nonWhite++
			}
		}
	}
	if len(seen) < 20 || nonWhite < 5000 {
		t.Errorf("screenshot looks blank: %d colours, %d non-white samples", len(seen), nonWhite)
	}
}
