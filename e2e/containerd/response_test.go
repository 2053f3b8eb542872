package containerd

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// deliberates are the README's "Deliberate differences" (and the
// environment's) as they show in this session. Keep them in step with the
// README.
var deliberates = []deliberate{
	{re(`^version$`), re(`^runtime_(name|version)$`), "the runtime names itself fakecontainerd, with its own version (and, for 1.7 and 2.x, the release it models)", nil},
	{re(`^(status|info)`), re(`^status\.conditions\[\d\]\.(status|reason|message)$`), "this containerd has no CNI config (host-network pods only); the fake has no network to configure and reports NetworkReady", nil},
	{re(`^info`), re(`^info\.config`), "the verbose info's config document is the fake's own config, not containerd's CRI config struct (to be aligned)", nil},
	{re(`^info`), re(`^info\.(cniconfig|lastCNILoadStatus)`), "CNI state: this containerd has no CNI config (host-network pods only); the fake models none", nil},
	{re(`^(inspect|ps)`), re(`(^|\.)(image_id|image\.user_specified_image)$`), "CRI fields 1.6 and 1.7 predate: user_specified_image, which 2.x echoes as the fake does, and image_id, which the fake's 1.6 and 1.7 models fill (containerd up to 2.2.7 leaves it empty, as the 2.x model does)", v16v17},
	{re(`^(inspect|ps)`), re(`(^|\.)image_ref$`), "containerd reports an image's repo digest, else its id: images imported with ctr have no repo digest; the fake's images always have one", nil},
	{re(`^(status|info)`), re(`^runtime_handlers`), "same handler list shape; features reported from each runtime's build", nil},
	{re(`^info`), re(`^info\.(golang|podCIDR)$`), "the info document's other keys: each build's Go version; podCIDR, which containerd shows only once kubelet sets it (to be aligned with the config document)", nil},
	{re(`^runtime config$`), re(`.`), "RuntimeConfig (the cgroup driver for kubelet) is containerd 2.0's; 1.6 and 1.7 have no such method (Unimplemented) and the fake answers it as 2.x does", v16v17},
	{re(`^(stop|stopp) missing$`), re(`^(code|error)$`), "stops are idempotent as in containerd 2.0 (a missing container or sandbox is not an error, per the CRI contract); 1.6 and 1.7 return NotFound", v16v17},
	{re(`^images`), re(`(^|\.)pinned$`), "the sandbox image is pinned as containerd 1.7 and 2.x pin it; 1.6 predates pinning", v16},
	{re(`^images busybox \(filter\)$`), re(`^images\[1\]`), "README: the fake honours ListImages' image filter; containerd (every release) ignores it, and crictl filters client-side", nil},
	{re(`no metadata|empty id|empty reference`), re(`^code$`), "README: a malformed request (no metadata, an empty id or reference) is InvalidArgument (containerd: Unknown)", nil},
	{re(`^pull busybox`), re(`.`), "the fake pulls from no registry (README: images come from no registry); containerd here has no network, so its pull of even a present image fails resolving", nil},
	{re(`images|inspecti|imagefsinfo`), re(`(^|\.)(size|used_bytes|inodes_used)`), "image sizes: the fake's are derived from the reference, containerd's from the imported busybox-static layer", nil},
	{re(`images|inspecti`), re(`(^|\.)(id|repo_digests\[\d\])$`), "image ids and digests are derived from the reference in the fake (README: images come from no registry)", nil},
	{re(`inspecti -v`), re(`^info\.`), "the verbose image info is containerd's image config JSON; the fake has no image config", nil},
	{re(`conflict`), re(`^code$`), "README: a name conflict is AlreadyExists (containerd 1.6 and 1.7: Unknown; 2.x: FailedPrecondition)", nil},
	{re(`bad runtime handler`), re(`^code$`), "README: an unknown runtime handler is InvalidArgument", nil},
	{re(`^exec --sync echo hi$`), re(`^stdout$`), "README: ExecSync runs nothing and answers with the configured canned result", nil},
	{re(`stats`), re(`(^|\.)(cpu|memory|writable_layer|swap|process)\.`), "README: the shim's Stats are synthetic usage, not cgroups metrics", nil},
	{re(`-v`), re(`^info\.info`), "verbose info carries containerd's runtime spec and snapshot details; the fake models a subset", nil},
	{re(`^imagefsinfo$`), re(`mountpoint`), "each runtime's own root directory", nil},
}

// The releases of a deliberate difference a later release removed.
var (
	v16    = []string{"1.6"}
	v16v17 = []string{"1.6", "1.7"}
)

func re(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// row is one line of the response-diff table.
type row struct {
	step, field, real, fake, verdict, reason string
}

// TestResponseDiff runs the crictl session against both runtimes, step by
// step, and prints the table: identical / differs / deliberate. It fails
// on a gRPC code that differs without a deliberate reason (and, with
// FIDELITY_STRICT=1, on any such field).
func TestResponseDiff(t *testing.T) {
	logs := logDir(t)
	real := startContainerd(t, logs)
	fake := startFake(t, logs, fakeRelease(real))
	rs, err := newSession(real)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := newSession(fake)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanupSession(t, rs)
	defer cleanupSession(t, fs)
	strict := os.Getenv("FIDELITY_STRICT") == "1"

	var rows []row
	identical, differs, delib := 0, 0, 0
	for _, st := range steps() {
		ro := rs.norm.outcomeOf(st.do(rs))
		fo := fs.norm.outcomeOf(st.do(fs))
		ds := compare(ro, fo)
		if len(ds) == 0 {
			identical++
			rows = append(rows, row{step: st.name, field: "(all)", real: summary(ro), fake: summary(fo), verdict: "identical"})
			continue
		}
		// Deliberate differences of a step are one row per reason: a
		// verbose info document alone has dozens.
		grouped := map[string][]string{}
		firstOf := map[string]difference{} // each group's first field, shown
		var reasons []string
		for _, d := range ds {
			reason := ""
			for _, dl := range deliberates {
				if dl.covers(real.release, st.name, d.field) {
					reason = dl.reason
					break
				}
			}
			if reason != "" {
				delib++
				if grouped[reason] == nil {
					reasons = append(reasons, reason)
					firstOf[reason] = d
				}
				grouped[reason] = append(grouped[reason], d.field)
				continue
			}
			differs++
			if d.mustBeEqual || strict {
				t.Errorf("%s: %s differs: containerd %q, fakecontainerd %q", st.name, d.field, d.real, d.fake)
			}
			verdict := "differs"
			if d.field == "error" {
				verdict = "differs (error text)"
			}
			rows = append(rows, row{step: st.name, field: d.field, real: d.real, fake: d.fake, verdict: verdict})
		}
		for _, reason := range reasons {
			fields := grouped[reason]
			first := firstOf[reason]
			rows = append(rows, row{step: st.name, field: fieldList(fields), real: first.real, fake: first.fake, verdict: "deliberate", reason: reason})
		}
	}
	table := renderRows(rows, real.version)
	summaryLine := fmt.Sprintf("%d steps: %d identical; %d fields differ, %d deliberately\n", len(steps()), identical, differs, delib)
	fmt.Print("\nResponse diff, " + real.version + " vs fakecontainerd\n\n" + table + "\n" + summaryLine)
	if err := os.WriteFile(filepath.Join(logs, "response-diff.md"), []byte(table+"\n"+summaryLine), 0o644); err != nil {
		t.Error(err)
	}
	// The README's form: the identical steps named in one paragraph, the
	// rest as rows.
	var same []string
	var rest []row
	for _, r := range rows {
		if r.verdict == "identical" {
			same = append(same, r.step)
		} else {
			rest = append(rest, r)
		}
	}
	compact := summaryLine + "\nIdentical (code, error text and every field): " + strings.Join(same, ", ") + ".\n\n" + renderRows(rest, real.version)
	if err := os.WriteFile(filepath.Join(logs, "response-diff-compact.md"), []byte(compact), 0o644); err != nil {
		t.Error(err)
	}
}

// summary is an identical outcome in a few words.
func summary(o outcome) string {
	if o.code != "OK" {
		return o.code + ": " + o.errMsg
	}
	return fmt.Sprintf("OK, %d fields", len(o.fields))
}

func renderRows(rows []row, realVersion string) string {
	var b strings.Builder
	b.WriteString("| step | field | " + realVersion + " | fakecontainerd | verdict |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		v := r.verdict
		if r.reason != "" {
			v += ": " + r.reason
		}
		real, fake := cell(r.real), cell(r.fake)
		if r.verdict == "identical" {
			fake = "same"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.step, cell(r.field), real, fake, v)
	}
	return b.String()
}

// fieldList names a group of fields: the count and the first few (the
// row shows the first one's values).
func fieldList(fields []string) string {
	if len(fields) <= 3 {
		return strings.Join(fields, ", ")
	}
	return fmt.Sprintf("%d fields: %s, ...", len(fields), strings.Join(fields[:3], ", "))
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return "`" + s + "`"
}

// cleanupSession removes what a failed session left, so no container
// outlives the test on containerd (containerd.sh stop kills the rest).
func cleanupSession(t *testing.T, s *session) {
	ctx, cancel := s.ctx()
	defer cancel()
	for _, pod := range []string{s.pod, s.pod2} {
		if pod != "" {
			_ = s.r.rt.StopPodSandbox(ctx, pod)
			_ = s.r.rt.RemovePodSandbox(ctx, pod)
		}
	}
}
