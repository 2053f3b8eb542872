package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// evaluate is scenario s's report (per node, as fakecluster incident1
// prints it) and its expectations' verdicts, from what the run saw.
func (r *scenarioRun) evaluate(s *clusterScenario) scenarioResult {
	res := scenarioResult{s: s}
	var b strings.Builder
	fmt.Fprintf(&b, "== scenario %s: %s\n", s.Name, s.Summary)
	for _, n := range s.names {
		fmt.Fprintf(&b, "node %s (arm %s, %s), times from time zero %s:\n", n, r.c.arm(n), nodeRole(r.labels[n]), r.t0.Format("15:04:05"))
		b.WriteString(r.watch.summary(n, r.t0, r.t0))
		hb, lease := r.watch.staleness(n)
		fmt.Fprintf(&b, "  heartbeat lag up to %.0fs, lease lag up to %.0fs\n", hb.Seconds(), lease.Seconds())
		ln, lerr, lslow, llong := callSummary(r.lists[n].Calls(), 2*time.Second)
		un, uerr, uslow, ulong := callSummary(r.updates[n].snapshot(), 2*time.Second)
		fmt.Fprintf(&b, "  runtime: ListContainers %d calls, %d over 2s, longest %.1fs, %d errors; UpdateContainerResources %d calls, %d over 2s, longest %.1fs, %d errors\n",
			ln, lslow, llong.Seconds(), lerr, un, uslow, ulong.Seconds(), uerr)
	}
	r.mu.Lock()
	shows := slices.Clone(r.shows)
	r.mu.Unlock()
	for _, sh := range shows {
		if sh.scenario == s.Name {
			fmt.Fprintf(&b, "-- at %+.0fs: kubectl %s\n%s", sh.at.Seconds(), sh.cmd, sh.out)
		}
	}
	for _, e := range s.Expect.Nodes {
		res.results = append(res.results, r.checkNodes(s, e)...)
	}
	hist := r.watch.history()
	for _, e := range s.Expect.Pods {
		res.results = append(res.results, r.checkPods(s, e, hist)...)
	}
	for _, e := range s.Expect.Events {
		res.results = append(res.results, r.checkEvents(s, e, hist))
	}
	b.WriteString("expectations:\n")
	for _, e := range res.results {
		verdict := "PASS"
		if !e.ok {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "  %s  %s: %s\n", verdict, e.what, e.detail)
	}
	fmt.Fprintf(&b, "scenario %s: %d of %d expectations met\n", s.Name, len(res.results)-res.failed(), len(res.results))
	res.report = b.String()
	return res
}

// nodeRole is a node's labels of the scenario's own, for the report.
func nodeRole(labels map[string]string) string {
	var l []string
	for k, v := range labels {
		if strings.HasPrefix(k, "fakecontainerd.io/") && k != "fakecontainerd.io/arm" && k != scenarioLabel {
			l = append(l, k+"="+v)
		}
	}
	slices.Sort(l)
	if len(l) == 0 {
		return "no role"
	}
	return strings.Join(l, ",")
}

func verdict(what string, problems []string, ok string) expectResult {
	if len(problems) == 0 {
		return expectResult{what: what, detail: ok, ok: true}
	}
	return expectResult{what: what, detail: strings.Join(problems, "; ")}
}

func (r *scenarioRun) checkNodes(s *clusterScenario, e nodeExpect) []expectResult {
	nodes := r.nodesOf(s, e.Nodes)
	sel := e.Nodes
	if sel == "" {
		sel = "all"
	}
	if len(nodes) == 0 {
		return []expectResult{{what: "nodes " + sel, detail: "matches none of the scenario's nodes"}}
	}
	var out []expectResult
	end := time.Now()
	for _, n := range nodes {
		wins := r.watch.notReady(n, r.t0)
		prefix := fmt.Sprintf("node %s (%s)", n, nodeRole(r.labels[n]))
		if e.ReadyThroughout {
			var p []string
			for _, w := range wins {
				p = append(p, fmt.Sprintf("Ready=%s from %+.0fs (%q)", w.status, w.from.Sub(r.t0).Seconds(), w.firstMsg))
			}
			out = append(out, verdict(prefix+" stays Ready", p, "no NotReady window"))
		}
		if nr := e.NotReady; nr != nil {
			out = append(out, checkNotReady(prefix, nr, wins, r.t0, end))
		}
		if e.NeverStatus != "" {
			var p []string
			for _, w := range wins {
				if w.status == e.NeverStatus {
					p = append(p, fmt.Sprintf("Ready=%s from %+.0fs", w.status, w.from.Sub(r.t0).Seconds()))
				}
			}
			out = append(out, verdict(fmt.Sprintf("%s never Ready=%s", prefix, e.NeverStatus), p, "never"))
		}
		if len(e.Taints) > 0 {
			_, seen := r.watch.current(n)
			var p []string
			for _, t := range e.Taints {
				found := false
				for _, set := range seen {
					found = found || slices.Contains(strings.Split(set, ","), t)
				}
				if !found {
					p = append(p, t+" never seen (seen: "+strings.Join(seen, " -> ")+")")
				}
			}
			out = append(out, verdict(prefix+" taints "+strings.Join(e.Taints, ", "), p, "seen"))
		}
		hb, lease := r.watch.staleness(n)
		if e.HeartbeatStale.set() {
			out = append(out, checkSpan(prefix+" heartbeat lag "+e.HeartbeatStale.String(), e.HeartbeatStale, hb))
		}
		if e.LeaseStale.set() {
			out = append(out, checkSpan(prefix+" lease lag "+e.LeaseStale.String(), e.LeaseStale, lease))
		}
		if e.ListContainers.set() {
			_, _, _, longest := callSummary(r.lists[n].Calls(), 2*time.Second)
			out = append(out, checkSpan(prefix+" longest ListContainers "+e.ListContainers.String(), e.ListContainers, longest))
		}
	}
	return out
}

func checkSpan(what string, s span, v time.Duration) expectResult {
	if p := s.check(v); p != "" {
		return expectResult{what: what, detail: p}
	}
	return expectResult{what: what, detail: v.Round(100 * time.Millisecond).String(), ok: true}
}

// checkNotReady: some window matches every condition of nr.
func checkNotReady(prefix string, nr *notReadyExpect, wins []window, t0, end time.Time) expectResult {
	status := nr.Status
	if status == "" {
		status = "False"
	}
	what := fmt.Sprintf("%s Ready=%s", prefix, status)
	if nr.Message != "" {
		what += fmt.Sprintf(" %q", nr.Message)
	}
	if nr.At.set() {
		what += " from " + nr.At.String()
	}
	if nr.For.set() {
		what += " for " + nr.For.String()
	}
	if nr.HeartbeatLag.set() {
		what += ", heartbeat lag " + nr.HeartbeatLag.String()
	}
	if nr.LeaseLag.set() {
		what += ", lease lag " + nr.LeaseLag.String()
	}
	if len(wins) == 0 {
		return expectResult{what: what, detail: "never NotReady"}
	}
	re := regexp.MustCompile(nr.Message)
	var misses []string
	for _, w := range wins {
		var p []string
		if w.status != status {
			p = append(p, "Ready="+w.status)
		}
		if !re.MatchString(w.firstMsg) {
			p = append(p, fmt.Sprintf("message %q", w.firstMsg))
		}
		at := w.from.Sub(t0)
		if m := nr.At.check(at); m != "" {
			p = append(p, "began at +"+m)
		}
		to := w.to
		if to.IsZero() {
			to = end
		}
		if m := nr.For.check(to.Sub(w.from)); m != "" {
			p = append(p, "lasted "+m)
		}
		if m := nr.HeartbeatLag.check(w.hbLag); m != "" {
			p = append(p, "heartbeat lag "+m)
		}
		if m := nr.LeaseLag.check(w.leaseLag); m != "" {
			p = append(p, "lease lag "+m)
		}
		if nr.Recovers != nil && *nr.Recovers == w.to.IsZero() {
			if w.to.IsZero() {
				p = append(p, "did not recover")
			} else {
				p = append(p, "recovered")
			}
		}
		desc := fmt.Sprintf("Ready=%s from %+.1fs to ", w.status, at.Seconds())
		if w.to.IsZero() {
			desc += "the end"
		} else {
			desc += fmt.Sprintf("%+.1fs (%.1fs)", w.to.Sub(t0).Seconds(), w.to.Sub(w.from).Seconds())
		}
		desc += fmt.Sprintf(", %q, heartbeat lag %.0fs, lease lag %.0fs", w.firstMsg, w.hbLag.Seconds(), w.leaseLag.Seconds())
		if len(p) == 0 {
			return expectResult{what: what, detail: desc, ok: true}
		}
		misses = append(misses, desc+": "+strings.Join(p, ", "))
	}
	return expectResult{what: what, detail: "no window matches: " + strings.Join(misses, " | ")}
}

func (r *scenarioRun) checkPods(s *clusterScenario, e podExpect, hist map[string]podHist) []expectResult {
	pods := scenarioPods(s, e.Pods, hist)
	sel := e.Pods
	if sel == "" {
		sel = "every pod"
	}
	what := "pods " + sel
	if e.On != "" {
		on := r.nodesOf(s, e.On)
		for k, h := range pods {
			if !slices.Contains(on, h.last.node) {
				delete(pods, k)
			}
		}
		what += " on " + e.On
	}
	if len(pods) == 0 {
		return []expectResult{{what: what, detail: "none seen"}}
	}
	keys := make([]string, 0, len(pods))
	for k := range pods {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []expectResult
	if e.Phase != "" {
		var p []string
		for _, k := range keys {
			if h := pods[k]; h.goneAt.IsZero() && h.last.phase != e.Phase {
				p = append(p, fmt.Sprintf("%s is %s", k, h.last.phase))
			}
		}
		out = append(out, verdict(what+" end "+e.Phase, p, fmt.Sprintf("%d pods", len(keys))))
	}
	if e.Restarts != nil {
		var p []string
		for _, k := range keys {
			if h := pods[k]; h.last.restarts > *e.Restarts {
				p = append(p, fmt.Sprintf("%s restarted %d times", k, h.last.restarts))
			}
		}
		out = append(out, verdict(fmt.Sprintf("%s at most %d restarts", what, *e.Restarts), p, fmt.Sprintf("%d pods", len(keys))))
	}
	if e.ReadyThroughout {
		var p []string
		for _, k := range keys {
			if h := pods[k]; h.notReadySeen {
				p = append(p, k+" seen Ready=False")
			} else if !h.wasReady {
				p = append(p, k+" never Ready")
			}
		}
		out = append(out, verdict(what+" stay Ready", p, fmt.Sprintf("%d pods Ready throughout", len(keys))))
	}
	if e.NotReadySeen {
		var seen []string
		for _, k := range keys {
			if pods[k].notReadySeen {
				seen = append(seen, k)
			}
		}
		if len(seen) == 0 {
			out = append(out, expectResult{what: what + " seen Ready=False", detail: "no pod was"})
		} else {
			out = append(out, expectResult{what: what + " seen Ready=False", detail: strings.Join(seen, ", "), ok: true})
		}
	}
	if e.Terminating.set() {
		var p, seen []string
		for _, k := range keys {
			h := pods[k]
			if h.deletedSeen.IsZero() {
				continue
			}
			gone := h.goneAt
			if gone.IsZero() {
				gone = time.Now()
			}
			d := gone.Sub(h.deletedSeen)
			seen = append(seen, fmt.Sprintf("%s %.0fs (from %+.0fs)", k, d.Seconds(), h.deletedSeen.Sub(r.t0).Seconds()))
			if m := e.Terminating.check(d); m != "" {
				p = append(p, k+" Terminating "+m)
			}
		}
		if len(seen) == 0 {
			p = append(p, "no pod was deleted")
		}
		out = append(out, verdict(what+" Terminating "+e.Terminating.String(), p, strings.Join(seen, ", ")))
	}
	if e.Running != nil {
		var on []string
		if e.RunningOn != "" {
			on = r.nodesOf(s, e.RunningOn)
		}
		n := 0
		var where []string
		for _, k := range keys {
			h := pods[k]
			if !h.goneAt.IsZero() || h.last.phase != "Running" || h.last.ready != "True" || h.last.terminating {
				continue
			}
			if e.RunningOn != "" && !slices.Contains(on, h.last.node) {
				continue
			}
			n++
			where = append(where, k+" on "+h.last.node)
		}
		w := fmt.Sprintf("%s %d Running and Ready at the end", what, *e.Running)
		if e.RunningOn != "" {
			w += " on " + e.RunningOn
		}
		if n != *e.Running {
			out = append(out, expectResult{what: w, detail: fmt.Sprintf("%d: %s", n, strings.Join(where, ", "))})
		} else {
			out = append(out, expectResult{what: w, detail: strings.Join(where, ", "), ok: true})
		}
	}
	return out
}

func (r *scenarioRun) checkEvents(s *clusterScenario, e eventExpect, hist map[string]podHist) expectResult {
	re := regexp.MustCompile(e.Message)
	what := "events " + e.Reason
	if e.Message != "" {
		what += fmt.Sprintf(" %q", e.Message)
	}
	if e.At.set() {
		what += " first at " + e.At.String()
	}
	n := 0
	var first time.Time
	for _, ev := range r.events {
		if ev.Reason != e.Reason || !re.MatchString(ev.Message) || (e.Kind != "" && ev.InvolvedObject.Kind != e.Kind) {
			continue
		}
		switch ev.InvolvedObject.Kind {
		case "Node":
			if !slices.Contains(s.names, ev.InvolvedObject.Name) {
				continue
			}
		case "Pod":
			h, ok := hist[ev.InvolvedObject.Namespace+"/"+ev.InvolvedObject.Name]
			if !ok || h.labels[scenarioLabel] != s.Name {
				continue
			}
		default:
			continue
		}
		if ev.at().Before(r.t0.Add(-time.Second)) {
			continue
		}
		n++
		if first.IsZero() || ev.at().Before(first) {
			first = ev.at()
		}
	}
	var p []string
	if m := e.Count.check(n); m != "" {
		p = append(p, "count "+m)
	}
	if n > 0 {
		if m := e.At.check(first.Sub(r.t0)); m != "" {
			p = append(p, "first at +"+m)
		}
	}
	return verdict(what, p, fmt.Sprintf("%d, first at %+.0fs", n, first.Sub(r.t0).Seconds()))
}
