package scenario

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/fakecontainerd/fakecontainerd/faults"
)

// Geometry of a variant's chart, in SVG pixels.
const (
	chartWidth  = 1340
	labelWidth  = 190 // lane names left of the plot
	rightMargin = 20
	plotWidth   = chartWidth - labelWidth - rightMargin
	laneHeight  = 24
	laneGap     = 6
	rowHeight   = 8 // one row of a lane of calls
	maxCallRows = 3
	relistPlotH = 170
	axisHeight  = 46
	// minLaneSpan hides containers whose every hold and unmount was
	// shorter: sub-second holds are every container's routine, not the
	// incident, and would bury it under dozens of empty lanes.
	minLaneSpan = time.Second
	// mergeGap is how close (px) sub-pixel spans must follow each other to
	// be drawn as one band: a relist a second makes one every ~2.4 px on
	// an 8 min chart, thousands of rects that show nothing more.
	mergeGap = 4
)

// Colours, one meaning each; the legend says which.
const (
	colUnmount   = "#e67e22"
	colLock      = "#2e6fd0"
	colList      = "#5d6d7e"
	colUpdateOK  = "#27ae60"
	colUpdateErr = "#e74c3c"
	colDeadline  = "#7b1414"
	colInFlight  = "#8e44ad"
	colRelistOK  = "#34495e"
	colThreshold = "#d62728"
	colUnhealthy = "#fadbd8"
	colAge       = "#c0392b"
	colExit      = "#111"
)

type svgRect struct {
	X, Y, W, H float64
	Fill       string
	Opacity    float64
	Title      string
}

type svgLine struct {
	X1, Y1, X2, Y2 float64
	Stroke         string
	Width          float64
	Dash           string
}

type svgText struct {
	X, Y   float64
	Text   string
	Anchor string
	Size   float64
	Fill   string
	Weight string
}

type svgPolyline struct {
	Points string
	Stroke string
	Width  float64
}

type chart struct {
	Width, Height float64
	Rects         []svgRect
	Polylines     []svgPolyline
	Lines         []svgLine
	Texts         []svgText
}

// htmlVariant is one variant's section of the report.
type htmlVariant struct {
	Name, Verdict string
	Unhealthy     bool
	Err           string
	// Description and Fixes say what the variant is.
	Description string
	Fixes       []htmlFix
	Chart       *chart
	Note        string
	// Longest says what held longest of all blame saw, and who waited.
	Longest string
	Blame   []htmlChain
	Errors  []ErrorCount
	Failed  []string
}

// htmlFix is one fix a variant switches on, as the page explains it.
type htmlFix struct {
	Name string
	faults.FixInfo
}

// htmlChain is a row of a variant's blame table: one group of samples.
type htmlChain struct {
	BlameChain
	// Chain and HeldBy are the chain's text and its holder with
	// containers named; Waiting its waiters joined.
	Chain, HeldBy, Waiting string
}

type htmlReport struct {
	Title, Subtitle      string
	Summary, Description string
	Stall                string
	Header               []string
	Rows                 [][]string
	Variants             []htmlVariant
	Legend               []legendItem
}

// legendItem is one entry of a chart's legend: a swatch of a kind (a
// filled box, a thin band, a line, a dashed line, a marker) and its words.
type legendItem struct {
	Kind, Colour, Text string
}

// chartLegend is the legend under every chart, one entry per colour.
var chartLegend = []legendItem{
	{"box", colUnmount, "rootfs unmount in the shim's Delete (lane's top half; long when dirty pages must be synced)"},
	{"box", colLock, "container's status lock held (lane's bottom half; named by the holding call)"},
	{"marker", colExit, "the container's process exits (scripted): red label = died (non-zero exit), grey = finished"},
	{"box", colList, "ListContainers call, from call to reply"},
	{"box", colUpdateOK, "UpdateContainerResources ok"},
	{"box", colUpdateErr, "call failed (UpdateContainerResources or ListContainers error)"},
	{"box", colDeadline, "UpdateContainerResources hit kubelet's 2 min deadline"},
	{"box", colInFlight, "call still running when the run ended"},
	{"band", colList, "thin light band: a stream of calls each too short to draw"},
	{"box", colRelistOK, "relist: a bar at its start, as tall as it took"},
	{"box", colUpdateErr, "relist whose GetPods failed (relist time not updated)"},
	{"line", colAge, "time since the last successful relist (what kubelet compares with the threshold)"},
	{"dash", colThreshold, "PLEG threshold (3 min): above it kubelet says \"PLEG is not healthy\""},
	{"box", colUnhealthy, "PLEG unhealthy: kubelet marks the node NotReady"},
}

// WriteHTML writes the report as one self-contained HTML page: per
// variant a timeline (the server's status-lock holds and unmounts, the
// driver's calls and relists against kubelet's threshold), then the A/B
// table and the blame chains seen. No scripts, no external assets.
func (r *Report) WriteHTML(w io.Writer) error {
	hr := htmlReport{
		Title:    "fakecontainerd A/B: " + r.Scenario,
		Subtitle: fmt.Sprintf("time scale %g, %v of wall time; all times are scenario (real-world) seconds", r.TimeScale, r.Wall.Round(time.Millisecond)),
		Summary:  r.Summary, Description: r.Description,
		Header: tableHeader(),
		Legend: chartLegend,
	}
	if r.Discounted > 0 {
		hr.Stall = strings.ToUpper(r.starvation()[:1]) + r.starvation()[1:] + "."
	}
	for _, v := range r.Variants {
		hr.Rows = append(hr.Rows, v.tableCells())
		hv := htmlVariant{Name: v.Name, Failed: v.Failed, Errors: v.Stats.Errors, Description: v.Description}
		for _, f := range v.Fixes {
			hv.Fixes = append(hv.Fixes, htmlFix{Name: string(f), FixInfo: f.Info()})
		}
		switch {
		case v.Err != nil:
			hv.Verdict, hv.Err, hv.Unhealthy = "did not run", v.Err.Error(), true
		case !v.Stats.Healthy():
			hv.Verdict, hv.Unhealthy = fmt.Sprintf("PLEG UNHEALTHY: %s s without a successful relist (threshold %s s)", seconds(v.Stats.MaxPLEGLastSeen), seconds(v.Stats.Threshold)), true
		default:
			hv.Verdict = fmt.Sprintf("PLEG healthy: at most %s s without a successful relist (threshold %s s)", seconds(v.Stats.MaxPLEGLastSeen), seconds(v.Stats.Threshold))
		}
		if v.Timeline != nil {
			hv.Chart, hv.Note = drawTimeline(v.Timeline)
			hv.Blame, hv.Longest = blameRows(v.Timeline)
		}
		hr.Variants = append(hr.Variants, hv)
	}
	return reportTemplate.Execute(w, hr)
}

// shortChainID matches the 8-character container ids blame's chains use.
var shortChainID = regexp.MustCompile(`\bcontainer ([0-9a-f]{8})\b`)

// blameRows turns a timeline's blame groups into table rows, containers
// named by pod and container, and says what held longest and who waited.
func blameRows(tl *Timeline) ([]htmlChain, string) {
	byShort := map[string]string{}
	for id, c := range tl.Containers {
		if len(id) >= 8 {
			byShort[id[:8]] = c.Label()
		}
	}
	name := func(chain string) string {
		return shortChainID.ReplaceAllStringFunc(chain, func(m string) string {
			if label, ok := byShort[m[len(m)-8:]]; ok {
				return m + " (" + label + ")"
			}
			return m
		})
	}
	rows := make([]htmlChain, 0, len(tl.Blame))
	var longest *BlameChain
	for i, b := range tl.Blame {
		rows = append(rows, htmlChain{BlameChain: b, Chain: name(b.Chain), HeldBy: name(b.Holder), Waiting: strings.Join(b.Waiters, ", ")})
		if longest == nil || b.LongestHeld > longest.LongestHeld {
			longest = &tl.Blame[i]
		}
	}
	if longest == nil || longest.Holder == "" {
		return rows, ""
	}
	summary := fmt.Sprintf("Longest hold blame saw: %s s, by %s", seconds(longest.LongestHeld), name(longest.Holder))
	if len(longest.Waiters) > 0 {
		summary += "; waiting on it: " + strings.Join(longest.Waiters, ", ")
	}
	if !waitsOnStatusLock(tl.Blame) && onlyShimCalls(longest.Waiters) {
		summary += ". No CRI call waited on a status lock behind it: only the shim's own calls waited"
	}
	return rows, summary + "."
}

// waitsOnStatusLock says whether any chain has a caller waiting on a
// status lock (what stalls ListContainers).
func waitsOnStatusLock(chains []BlameChain) bool {
	for _, c := range chains {
		if strings.Contains(c.Chain, "on the status lock") {
			return true
		}
	}
	return false
}

// onlyShimCalls says whether every waiter is a shim's own task call.
func onlyShimCalls(waiters []string) bool {
	for _, w := range waiters {
		if !strings.HasPrefix(w, "shim ") {
			return false
		}
	}
	return len(waiters) > 0
}

// xScale maps scenario time to the plot's x.
type xScale struct{ span time.Duration }

func (s xScale) x(d time.Duration) float64 {
	return labelWidth + float64(plotWidth)*float64(d)/float64(s.span)
}

func (s xScale) w(from, to time.Duration) float64 { return s.x(to) - s.x(from) }

// bar is a span to draw, before packing and merging.
type bar struct {
	from, to time.Duration
	fill     string
	title    string
}

// packRows assigns bars to rows greedily (first row free at the bar's
// start), at most maxRows; the overflow goes to the last row, drawn with
// opacity so overlaps still read as darker.
func packRows(bars []bar, maxRows int) [][]bar {
	sort.Slice(bars, func(i, j int) bool { return bars[i].from < bars[j].from })
	rows := make([][]bar, 0, maxRows)
	ends := []time.Duration{}
	for _, b := range bars {
		placed := false
		for i := range rows {
			if ends[i] <= b.from {
				rows[i] = append(rows[i], b)
				ends[i] = b.to
				placed = true
				break
			}
		}
		if placed {
			continue
		}
		if len(rows) < maxRows {
			rows = append(rows, []bar{b})
			ends = append(ends, b.to)
			continue
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], b)
		ends[len(rows)-1] = max(ends[len(rows)-1], b.to)
	}
	return rows
}

// mergeRow turns a row's bars into rectangles, merging runs of bars of one
// colour that are each under a pixel wide and under a pixel apart: a
// healthy run makes thousands of sub-millisecond calls, which would bloat
// the file without adding anything a screen can show.
func mergeRow(sc xScale, row []bar, y, h, opacity float64) []svgRect {
	var out []svgRect
	n := 0 // calls merged into out's last rectangle
	for _, b := range row {
		x, w := sc.x(b.from), sc.w(b.from, b.to)
		if len(out) > 0 && n > 0 && w < 1 {
			last := &out[len(out)-1]
			if last.Fill == b.fill && x-(last.X+last.W) < mergeGap {
				if n == 1 {
					// Now a band of short spans: thinner and
					// lighter than a real one.
					last.Y, last.H, last.Opacity = y+h/3, h/3, 0.45
				}
				last.W = math.Max(last.W, x+math.Max(w, 1)-last.X)
				n++
				last.Title = fmt.Sprintf("%d short spans (each under %.2f s) from %s s", n, sc.span.Seconds()/plotWidth, secondsF(sc, last.X))
				continue
			}
		}
		out = append(out, svgRect{X: x, Y: y, W: math.Max(w, 1), H: h, Fill: b.fill, Opacity: opacity, Title: b.title})
		n = 0
		if w < 1 {
			n = 1
		}
	}
	return out
}

func secondsF(sc xScale, x float64) string {
	return fmt.Sprintf("%.1f", (x-labelWidth)/float64(plotWidth)*sc.span.Seconds())
}

func spanTitle(what string, from, to time.Duration) string {
	return fmt.Sprintf("%s: %s s → %s s (%s s)", what, seconds(from), seconds(to), seconds(to-from))
}

// drawTimeline lays out one variant's chart; the note says what was left
// out.
func drawTimeline(tl *Timeline) (*chart, string) {
	span := tl.Duration
	for _, c := range tl.Calls {
		span = max(span, c.End)
	}
	if span <= 0 {
		span = time.Second
	}
	sc := xScale{span: span}
	c := &chart{Width: chartWidth}
	// Lane backgrounds go under the unhealthy shading, which goes under
	// the bars.
	var backgrounds []svgRect
	y := 8.0
	top := y
	label := func(text string, y float64) {
		c.Texts = append(c.Texts, svgText{X: labelWidth - 8, Y: y, Text: text, Anchor: "end", Size: 12, Fill: "#222"})
	}

	// Containers with a visible hold or unmount, in order of first event.
	type lane struct {
		id       string
		first    time.Duration
		longest  time.Duration
		volatile bool
	}
	lanes := map[string]*lane{}
	get := func(id string, from, to time.Duration) *lane {
		l, ok := lanes[id]
		if !ok {
			l = &lane{id: id, first: from}
			lanes[id] = l
		}
		l.first = min(l.first, from)
		l.longest = max(l.longest, to-from)
		return l
	}
	for _, u := range tl.Unmounts {
		get(u.Container, u.From, u.To).volatile = u.Volatile
	}
	for _, h := range tl.Locks {
		get(h.Container, h.From, h.To)
	}
	var shown []*lane
	hidden := 0
	for _, l := range lanes {
		if l.longest >= minLaneSpan {
			shown = append(shown, l)
		} else {
			hidden++
		}
	}
	sort.Slice(shown, func(i, j int) bool {
		if shown[i].first != shown[j].first {
			return shown[i].first < shown[j].first
		}
		return shown[i].id < shown[j].id
	})
	laneY := map[string]float64{}
	for _, l := range shown {
		laneY[l.id] = y
		info, named := tl.Containers[l.id]
		sub := shortName(l.id)
		if l.volatile {
			sub += " (volatile)"
		}
		if !named {
			label("container "+sub, y+laneHeight/2+4)
		} else {
			colour, what := "#222", ""
			if info.Exits {
				colour, what = "#777", fmt.Sprintf(", finished (exit %d)", info.ExitCode)
				if info.ExitCode != 0 {
					colour, what = colThreshold, fmt.Sprintf(", died (exit %d)", info.ExitCode)
				}
			}
			c.Texts = append(c.Texts,
				svgText{X: labelWidth - 8, Y: y + 10, Text: info.Label(), Anchor: "end", Size: 12, Fill: colour, Weight: boldIf(info.Exits && info.ExitCode != 0)},
				svgText{X: labelWidth - 8, Y: y + 21, Text: sub + what, Anchor: "end", Size: 9, Fill: "#666"})
			if info.Exits && info.ExitAt <= span {
				x := sc.x(info.ExitAt)
				c.Lines = append(c.Lines, svgLine{X1: x, Y1: y - 1, X2: x, Y2: y + laneHeight + 1, Stroke: colExit, Width: 2})
				c.Texts = append(c.Texts, svgText{X: x - 3, Y: y + 9, Text: fmt.Sprintf("exit %d", info.ExitCode), Anchor: "end", Size: 9, Fill: colExit})
			}
		}
		backgrounds = append(backgrounds, svgRect{X: labelWidth, Y: y, W: plotWidth, H: laneHeight, Fill: "#f4f6f7", Opacity: 1})
		y += laneHeight + laneGap
	}
	// Unmounts in the lane's upper half, status-lock holds in the lower.
	for _, u := range tl.Unmounts {
		ly, ok := laneY[u.Container]
		if !ok {
			continue
		}
		what := "rootfs unmount (sync of dirty pages)"
		if u.Volatile {
			what = "rootfs unmount (volatile: no sync)"
		}
		c.Rects = append(c.Rects, svgRect{X: sc.x(u.From), Y: ly + 1, W: math.Max(sc.w(u.From, u.To), 1), H: laneHeight/2 - 1, Fill: colUnmount, Opacity: 1, Title: spanTitle(what, u.From, u.To)})
	}
	holdsByLane := map[string][]bar{}
	for _, h := range tl.Locks {
		if _, ok := laneY[h.Container]; ok {
			holdsByLane[h.Container] = append(holdsByLane[h.Container], bar{from: h.From, to: h.To, fill: colLock, title: spanTitle("status lock held by "+h.Op, h.From, h.To)})
		}
	}
	for id, holds := range holdsByLane {
		ly := laneY[id]
		sort.Slice(holds, func(i, j int) bool { return holds[i].from < holds[j].from })
		c.Rects = append(c.Rects, mergeRow(sc, holds, ly+laneHeight/2+1, laneHeight/2-2, 0.9)...)
		for _, h := range tl.Locks {
			// Name the operation where the bar has room for it.
			if h.Container != id {
				continue
			}
			if w := sc.w(h.From, h.To); w >= 7*float64(len(h.Op))+8 {
				c.Texts = append(c.Texts, svgText{X: sc.x(h.From) + 4, Y: ly + laneHeight - 3.5, Text: h.Op + " " + seconds(h.To-h.From) + " s", Size: 9.5, Fill: "#fff"})
			}
		}
	}

	// Lanes of calls.
	callLane := func(name string, bars []bar) {
		rows := packRows(bars, maxCallRows)
		n := max(len(rows), 1)
		h := float64(n*rowHeight + 4)
		label(name, y+h/2+4)
		backgrounds = append(backgrounds, svgRect{X: labelWidth, Y: y, W: plotWidth, H: h, Fill: "#f4f6f7", Opacity: 1})
		for i, row := range rows {
			c.Rects = append(c.Rects, mergeRow(sc, row, y+2+float64(i*rowHeight), rowHeight-2, 0.75)...)
		}
		y += h + laneGap
	}
	var lists, updates []bar
	for _, call := range tl.Calls {
		switch call.Method {
		case "ListContainers":
			fill, what := colList, "ListContainers"
			if call.InFlight {
				fill, what = colInFlight, "ListContainers (still waiting at the end)"
			} else if call.Code != codes.OK {
				fill, what = colUpdateErr, "ListContainers: "+call.Code.String()
			}
			lists = append(lists, bar{from: call.Start, to: call.End, fill: fill, title: spanTitle(what, call.Start, call.End)})
		case "UpdateContainerResources":
			fill, what := colUpdateOK, "UpdateContainerResources ok"
			switch {
			case call.InFlight:
				fill, what = colInFlight, "UpdateContainerResources (still running at the end)"
			case call.Code == codes.DeadlineExceeded:
				fill, what = colDeadline, "UpdateContainerResources: DeadlineExceeded"
			case call.Code != codes.OK:
				fill, what = colUpdateErr, "UpdateContainerResources: "+call.Code.String()
			}
			updates = append(updates, bar{from: call.Start, to: call.End, fill: fill, title: spanTitle(what, call.Start, call.End)})
		}
	}
	callLane("ListContainers", lists)
	callLane("UpdateContainerResources", updates)

	// Relist durations against the threshold.
	y += 6
	plotTop := y
	ymax := tl.Threshold * 5 / 4
	for _, r := range tl.Relists {
		ymax = max(ymax, (r.End-r.Start)*11/10)
	}
	if ymax <= 0 {
		ymax = time.Second
	}
	yOf := func(d time.Duration) float64 { return plotTop + relistPlotH - relistPlotH*float64(d)/float64(ymax) }
	backgrounds = append(backgrounds, svgRect{X: labelWidth, Y: plotTop, W: plotWidth, H: relistPlotH, Fill: "#fbfcfc", Opacity: 1})
	label("relist duration", plotTop+relistPlotH/2-2)
	c.Texts = append(c.Texts, svgText{X: labelWidth - 8, Y: plotTop + relistPlotH/2 + 12, Text: "(bar at its start)", Anchor: "end", Size: 10, Fill: "#666"})
	step := niceStep(ymax, 5)
	for d := time.Duration(0); d <= ymax; d += step {
		yy := yOf(d)
		c.Lines = append(c.Lines, svgLine{X1: labelWidth, Y1: yy, X2: labelWidth + plotWidth, Y2: yy, Stroke: "#e5e8e8", Width: 1})
		c.Texts = append(c.Texts, svgText{X: labelWidth + 3, Y: yy - 2, Text: fmt.Sprintf("%g s", d.Seconds()), Size: 9, Fill: "#888"})
	}
	var short []bar
	for _, r := range tl.Relists {
		fill, what := colRelistOK, "relist"
		if !r.OK {
			fill, what = colUpdateErr, "relist (GetPods failed)"
		}
		yy := yOf(r.End - r.Start)
		if plotTop+relistPlotH-yy < 1.5 {
			// Too short to see: drawn as a band along the axis.
			short = append(short, bar{from: r.Start, to: r.Start, fill: fill, title: spanTitle(what, r.Start, r.End)})
			continue
		}
		c.Rects = append(c.Rects, svgRect{X: sc.x(r.Start), Y: yy, W: 2, H: plotTop + relistPlotH - yy, Fill: fill, Opacity: 0.85, Title: spanTitle(what, r.Start, r.End)})
	}
	c.Rects = append(c.Rects, mergeRow(sc, short, plotTop+relistPlotH-3, 3, 0.85)...)
	// kubelet's PLEG age (now - the start of the last relist whose GetPods
	// succeeded) as a sawtooth: what crosses the threshold is this, not
	// any one relist.
	var pts []string
	var base time.Duration
	addPt := func(t, age time.Duration) {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", sc.x(t), yOf(min(age, ymax))))
	}
	addPt(0, 0)
	for _, r := range tl.Relists {
		if !r.OK {
			continue
		}
		addPt(r.End, r.End-base)
		addPt(r.End, r.End-r.Start)
		base = r.Start
	}
	addPt(tl.Duration, tl.Duration-base)
	c.Polylines = append(c.Polylines, svgPolyline{Points: strings.Join(thinPoints(pts), " "), Stroke: colAge, Width: 1.5})
	c.Texts = append(c.Texts, svgText{X: labelWidth - 8, Y: plotTop + relistPlotH/2 + 26, Text: "— time since last", Anchor: "end", Size: 10, Fill: colAge})
	c.Texts = append(c.Texts, svgText{X: labelWidth - 8, Y: plotTop + relistPlotH/2 + 38, Text: "successful relist", Anchor: "end", Size: 10, Fill: colAge})
	if tl.Threshold > 0 && tl.Threshold <= ymax {
		ty := yOf(tl.Threshold)
		c.Lines = append(c.Lines, svgLine{X1: labelWidth, Y1: ty, X2: labelWidth + plotWidth, Y2: ty, Stroke: colThreshold, Width: 2, Dash: "8 5"})
		c.Texts = append(c.Texts, svgText{X: labelWidth + plotWidth - 4, Y: ty - 4, Text: fmt.Sprintf("PLEG threshold %s s", seconds(tl.Threshold)), Anchor: "end", Size: 11, Fill: colThreshold, Weight: "bold"})
	}
	y = plotTop + relistPlotH

	// Unhealthy windows, shaded under everything (drawn first).
	var shade []svgRect
	for _, win := range tl.Unhealthy {
		shade = append(shade, svgRect{X: sc.x(win.From), Y: top - 4, W: math.Max(sc.w(win.From, win.To), 1), H: y - top + 8, Fill: colUnhealthy, Opacity: 0.8,
			Title: spanTitle("PLEG unhealthy (kubelet marks the node NotReady)", win.From, win.To)})
		c.Texts = append(c.Texts, svgText{X: sc.x(win.From) + 4, Y: plotTop + 14, Text: "PLEG unhealthy", Size: 11, Fill: colThreshold, Weight: "bold"})
	}
	c.Rects = append(append(backgrounds, shade...), c.Rects...)

	// Time axis.
	c.Lines = append(c.Lines, svgLine{X1: labelWidth, Y1: y, X2: labelWidth + plotWidth, Y2: y, Stroke: "#333", Width: 1})
	tick := niceStep(span, 12)
	for d := time.Duration(0); d <= span; d += tick {
		x := sc.x(d)
		c.Lines = append(c.Lines, svgLine{X1: x, Y1: top, X2: x, Y2: y, Stroke: "#d5d8dc", Width: 0.6, Dash: "2 3"})
		c.Lines = append(c.Lines, svgLine{X1: x, Y1: y, X2: x, Y2: y + 5, Stroke: "#333", Width: 1})
		c.Texts = append(c.Texts, svgText{X: x, Y: y + 18, Text: fmt.Sprintf("%g s", d.Seconds()), Anchor: "middle", Size: 11, Fill: "#333"})
	}
	// The axis' name sits under the ticks, clear of the first one.
	c.Texts = append(c.Texts, svgText{X: labelWidth + plotWidth/2, Y: y + 36, Text: "scenario time (real-world seconds since the workload started)", Anchor: "middle", Size: 11, Fill: "#666"})
	c.Height = y + axisHeight

	var note []string
	if hidden > 0 {
		note = append(note, fmt.Sprintf("%d other containers had only sub-second status-lock holds or unmounts (not drawn).", hidden))
	}
	if len(shown) == 0 {
		note = append(note, "No container held a status lock or unmounted for a second or more.")
	}
	return c, strings.Join(note, " ")
}

// niceStep is a round step (1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10 min, ...)
// giving at most about n steps over span.
func niceStep(span time.Duration, n int) time.Duration {
	for _, s := range []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
	} {
		if span/s <= time.Duration(n) {
			return s
		}
	}
	return span / time.Duration(n)
}

// thinPoints drops consecutive duplicates: a healthy run's sawtooth is
// thousands of points on a few pixels.
func thinPoints(pts []string) []string {
	out := pts[:0:0]
	for i, p := range pts {
		if i > 0 && p == pts[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

func boldIf(b bool) string {
	if b {
		return "bold"
	}
	return ""
}

func shortName(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func durationCell(d time.Duration) string { return seconds(d) + " s" }

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"f":   func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"dur": durationCell,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { margin-bottom: 4px; }
.sub { color: #555; margin-top: 0; }
.legend { background: #f8f9f9; border: 1px solid #ddd; padding: 10px 14px; line-height: 1.55; }
.desc { color: #333; max-width: 1100px; }
ul.key { list-style: none; padding: 6px 10px; margin: 4px 0 10px; display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 12px; background: #f8f9f9; border: 1px solid #e3e6e8; }
ul.key li { white-space: nowrap; }
.band { display: inline-block; width: 16px; height: 4px; vertical-align: 3px; margin-right: 3px; opacity: 0.45; }
.ln { display: inline-block; width: 16px; height: 0; vertical-align: 4px; margin-right: 3px; border-top: 2px solid; }
.ln.dash { border-top-style: dashed; }
.mk { display: inline-block; width: 2px; height: 12px; vertical-align: -1px; margin: 0 7px 0 4px; }
ul.fixes { margin: 4px 0 10px; font-size: 13px; }
.sw { display: inline-block; width: 12px; height: 12px; vertical-align: -1px; margin-right: 3px; border-radius: 2px; }
.bad { color: #c0392b; font-weight: bold; }
.good { color: #1e8449; font-weight: bold; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section { margin-top: 26px; }
.note { color: #666; font-size: 12px; }
svg { display: block; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="sub">{{.Subtitle}}</p>
{{with .Stall}}<p class="note">{{.}}</p>{{end}}
{{with .Summary}}<p><b>{{.}}</b></p>{{end}}
{{with .Description}}<p class="desc">{{.}}</p>{{end}}
<p class="legend">Each variant below ran the same workload against its own fake containerd, driven like a kubelet: PLEG relists every second (ListPodSandbox + ListContainers) and the older CPU manager calls UpdateContainerResources on every running container every 10 s. Read a stall from the top of a chart down: a long unmount holds the shim's process lock; an UpdateContainerResources holds the container's status lock while it waits for it; every ListContainers waits for that status lock; relists stretch past the threshold. Each chart has its legend under it; hover a bar for its times.</p>

<h2>A/B</h2>
<table>
<tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range $i, $c := .}}<td{{if and (ge $i 2) (le $i 6)}} class="num"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</table>
<p class="note">Durations in scenario seconds. NO RELIST FOR is the longest time without a successful relist (kubelet's "pleg was last seen active ... ago").</p>

{{range .Variants}}
<section>
<h2>{{.Name}}: <span class="{{if .Unhealthy}}bad{{else}}good{{end}}">{{.Verdict}}</span></h2>
{{with .Description}}<p>{{.}}</p>{{end}}
{{if .Fixes}}<ul class="fixes">{{range .Fixes}}<li><b>{{.Name}}</b>: {{.Changes}}. <i>Upstream:</i> {{.Upstream}}. <i>Cost:</i> {{.Cost}}.</li>{{end}}</ul>{{else}}<p class="note">No fix switched on: containerd's code paths as they are.</p>{{end}}
{{with .Err}}<p class="bad">{{.}}</p>{{end}}
{{with .Chart}}
<svg xmlns="http://www.w3.org/2000/svg" width="{{f .Width}}" height="{{f .Height}}" viewBox="0 0 {{f .Width}} {{f .Height}}" font-family="Helvetica, Arial, sans-serif" role="img" aria-label="timeline">
{{range .Rects}}<rect x="{{f .X}}" y="{{f .Y}}" width="{{f .W}}" height="{{f .H}}" fill="{{.Fill}}"{{if lt .Opacity 1.0}} fill-opacity="{{.Opacity}}"{{end}}>{{with .Title}}<title>{{.}}</title>{{end}}</rect>
{{end}}{{range .Polylines}}<polyline points="{{.Points}}" fill="none" stroke="{{.Stroke}}" stroke-width="{{.Width}}"/>
{{end}}{{range .Lines}}<line x1="{{f .X1}}" y1="{{f .Y1}}" x2="{{f .X2}}" y2="{{f .Y2}}" stroke="{{.Stroke}}" stroke-width="{{.Width}}"{{with .Dash}} stroke-dasharray="{{.}}"{{end}}/>
{{end}}{{range .Texts}}<text x="{{f .X}}" y="{{f .Y}}" font-size="{{.Size}}" fill="{{.Fill}}"{{with .Anchor}} text-anchor="{{.}}"{{end}}{{with .Weight}} font-weight="{{.}}"{{end}}>{{.Text}}</text>
{{end}}</svg>
<ul class="key">{{range $.Legend}}<li>{{if eq .Kind "box"}}<span class="sw" style="background:{{.Colour}}"></span>{{else if eq .Kind "band"}}<span class="band" style="background:{{.Colour}}"></span>{{else if eq .Kind "marker"}}<span class="mk" style="background:{{.Colour}}"></span>{{else}}<span class="ln{{if eq .Kind "dash"}} dash{{end}}" style="border-color:{{.Colour}}"></span>{{end}}{{.Text}}</li>{{end}}</ul>
{{end}}
{{with .Note}}<p class="note">{{.}}</p>{{end}}
{{with .Failed}}<p class="bad">Expectations not met:</p><ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{with .Errors}}<h3>Errors kubelet saw</h3><table><tr><th>count</th><th>error</th></tr>{{range .}}<tr><td class="num">{{.Count}}</td><td>{{.String}}</td></tr>{{end}}</table>{{end}}
<h3>Blame chains seen</h3>
{{with .Longest}}<p>{{.}}</p>{{end}}
{{if .Blame}}<p class="note">Samples of one chain that differ only in who waits and for how long are one row.</p><table><tr><th>samples</th><th>first seen</th><th>last seen</th><th>longest hold</th><th>held by</th><th>waiting</th><th>chain (as it read at its longest hold)</th></tr>
{{range .Blame}}<tr><td class="num">{{.Count}}</td><td class="num">{{dur .First}}</td><td class="num">{{dur .Last}}</td><td class="num">{{dur .LongestHeld}}</td><td>{{.HeldBy}}</td><td>{{.Waiting}}</td><td>{{.Chain}}</td></tr>
{{end}}</table>{{else}}<p class="note">None: no caller waited on a tracked lock or inside a fault when blame was sampled (every 5 scenario seconds).</p>{{end}}
</section>
{{end}}
</body>
</html>
`))
