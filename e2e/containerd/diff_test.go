package containerd

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// outcome is one call's result on one runtime, normalised: the gRPC code,
// the error text and every response field by path.
type outcome struct {
	code   string
	errMsg string
	fields map[string]string
}

// normaliser replaces what must differ between two runtimes (ids the
// runtime chose, times, pids, digests) with stable names.
type normaliser struct {
	names map[string]string // runtime-chosen id -> symbolic name
}

func newNormaliser() *normaliser { return &normaliser{names: map[string]string{}} }

// name records that id (a sandbox, container or image id) is called sym.
func (n *normaliser) name(id, sym string) {
	if id != "" {
		n.names[id] = sym
	}
}

var (
	digestRe = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	hex64Re  = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	// Paths (of a flattened response) whose value is a time or a pid.
	timeKey = regexp.MustCompile(`(^|\.)(created_at|started_at|finished_at|timestamp|createdAt|startedAt|finishedAt|exitedAt|created|startedAt)$`)
	pidKey  = regexp.MustCompile(`(^|\.)pid$`)
	// Byte counts and usage figures of a live system.
	usageKey = regexp.MustCompile(`(^|\.)(used_bytes|inodes_used|usage_bytes|usage_core_nano_seconds|usage_nano_cores|working_set_bytes|available_bytes|rss_bytes|page_faults|major_page_faults|swap_usage_bytes|swap_available_bytes)\.value$`)
)

func (n *normaliser) text(s string) string {
	// Longest first, so a short id prefix never eats a longer id.
	ids := make([]string, 0, len(n.names))
	for id := range n.names {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return len(ids[i]) > len(ids[j]) })
	for _, id := range ids {
		s = strings.ReplaceAll(s, id, n.names[id])
	}
	s = digestRe.ReplaceAllString(s, "<digest>")
	return hex64Re.ReplaceAllString(s, "<hex64>")
}

// outcomeOf normalises a response (nil on error) and an error.
func (n *normaliser) outcomeOf(resp proto.Message, err error) outcome {
	o := outcome{code: status.Code(err).String(), fields: map[string]string{}}
	if err != nil {
		o.errMsg = n.text(status.Convert(err).Message())
		return o
	}
	if resp == nil {
		return o
	}
	b, merr := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
	if merr != nil {
		o.fields["<marshal>"] = merr.Error()
		return o
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		o.fields["<marshal>"] = string(b)
		return o
	}
	n.flatten("", v, o.fields, 0)
	return o
}

// flatten writes v's leaves under prefix. A string holding a JSON object
// (the verbose info maps) is opened; below infoDepth levels of it an
// object is summarised by its sorted keys, so a whole OCI spec is one row.
const infoDepth = 2

func (n *normaliser) flatten(prefix string, v any, out map[string]string, jsonDepth int) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		if jsonDepth > infoDepth {
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			out[prefix] = "{" + strings.Join(keys, ",") + "}"
			return
		}
		for k, e := range x {
			n.flatten(join(k), e, out, nextDepth(jsonDepth))
		}
	case []any:
		// Lists of objects come in the runtime's map order: compare them
		// sorted by their normalised content.
		items := make([]map[string]string, len(x))
		for i, e := range x {
			items[i] = map[string]string{}
			n.flatten("", e, items[i], jsonDepth)
		}
		if len(x) > 0 {
			if _, isObj := x[0].(map[string]any); isObj {
				slices.SortFunc(items, func(a, b map[string]string) int { return strings.Compare(sortKey(a), sortKey(b)) })
			}
		}
		if len(items) == 0 {
			out[prefix] = "[]"
		}
		for i, it := range items {
			for k, e := range it {
				p := fmt.Sprintf("%s[%d]", prefix, i)
				if k != "" {
					p += "." + k
				}
				out[p] = e
			}
		}
	case string:
		var inner any
		if strings.HasPrefix(strings.TrimSpace(x), "{") && json.Unmarshal([]byte(x), &inner) == nil {
			n.flatten(prefix, inner, out, 1)
			return
		}
		out[prefix] = n.leaf(prefix, x)
	case nil:
		out[prefix] = "null"
	default:
		b, _ := json.Marshal(x)
		out[prefix] = n.leaf(prefix, string(b))
	}
}

func nextDepth(d int) int {
	if d == 0 {
		return 0
	}
	return d + 1
}

func (n *normaliser) leaf(path, v string) string {
	switch {
	case v == "0" || v == "" || v == "null":
		return v
	case timeKey.MatchString(path):
		return "<time>"
	case pidKey.MatchString(path):
		return "<pid>"
	case usageKey.MatchString(path):
		return "<usage>"
	}
	return n.text(v)
}

// sortKey orders list items by what names them (tag, name, id), then by
// their whole content.
func sortKey(m map[string]string) string {
	for _, k := range []string{"repo_tags[0]", "metadata.name", "attributes.metadata.name", "id"} {
		if v, ok := m[k]; ok {
			return v + "\x00" + render(m)
		}
	}
	return render(m)
}

func render(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s;", k, m[k])
	}
	return b.String()
}

// difference is one field (or the code, or the error text) of one step
// where the runtimes disagree.
type difference struct {
	field       string
	real, fake  string
	deliberate  string // the reason, when it is a deliberate difference
	mustBeEqual bool   // a code: the suite fails on it unless deliberate
}

func compare(real, fake outcome) []difference {
	var ds []difference
	if real.code != fake.code {
		ds = append(ds, difference{field: "code", real: real.code, fake: fake.code, mustBeEqual: true})
	}
	if real.errMsg != fake.errMsg {
		ds = append(ds, difference{field: "error", real: real.errMsg, fake: fake.errMsg})
	}
	keys := map[string]bool{}
	for k := range real.fields {
		keys[k] = true
	}
	for k := range fake.fields {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		r, rok := real.fields[k]
		f, fok := fake.fields[k]
		if !rok {
			r = "(absent)"
		}
		if !fok {
			f = "(absent)"
		}
		if r != f {
			ds = append(ds, difference{field: k, real: r, fake: f})
		}
	}
	return ds
}

// deliberate is one entry of the README's "Deliberate differences" as
// the diff sees it: the steps and fields it covers and why.
type deliberate struct {
	step, field *regexp.Regexp
	reason      string
	// releases are the containerd lines (of the real containerd, "1.6",
	// "1.7", "2.x") where the difference exists; nil: every line. A
	// difference a later release removes is listed for the earlier ones
	// only, so against that release the fake must match.
	releases []string
}

func (d deliberate) covers(release, step, field string) bool {
	return (d.releases == nil || slices.Contains(d.releases, release)) && d.step.MatchString(step) && d.field.MatchString(field)
}
