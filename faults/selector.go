package faults

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Target describes the object a fault point is about. Points that concern
// no object (an image pull) leave it mostly empty.
type Target struct {
	ContainerID   string
	SandboxID     string
	ContainerName string
	PodName       string
	PodNamespace  string
	// Labels are the pod's labels overlaid with the container's.
	Labels      map[string]string
	Annotations map[string]string
}

func (t Target) String() string {
	var parts []string
	if t.ContainerID != "" {
		parts = append(parts, "container "+short(t.ContainerID))
	}
	if t.ContainerName != "" {
		parts = append(parts, "name "+t.ContainerName)
	}
	if t.SandboxID != "" {
		parts = append(parts, "sandbox "+short(t.SandboxID))
	}
	if t.PodName != "" {
		parts = append(parts, "pod "+t.PodNamespace+"/"+t.PodName)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Selector picks the targets a fault applies to; the zero Selector picks
// all. Every field that is set must match.
type Selector struct {
	// ID is a prefix of the container id or of the sandbox id.
	ID          string            `json:"id,omitempty"`
	Pod         string            `json:"pod,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Container   string            `json:"container,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Matches reports whether t is selected.
func (s Selector) Matches(t Target) bool {
	if s.ID != "" && !strings.HasPrefix(t.ContainerID, s.ID) && !strings.HasPrefix(t.SandboxID, s.ID) {
		return false
	}
	if s.Pod != "" && s.Pod != t.PodName {
		return false
	}
	if s.Namespace != "" && s.Namespace != t.PodNamespace {
		return false
	}
	if s.Container != "" && s.Container != t.ContainerName {
		return false
	}
	for k, v := range s.Labels {
		if got, ok := t.Labels[k]; !ok || got != v {
			return false
		}
	}
	for k, v := range s.Annotations {
		if got, ok := t.Annotations[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// String is the selector in ParseSelector's syntax.
func (s Selector) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("id", s.ID)
	add("pod", s.Pod)
	add("namespace", s.Namespace)
	add("container", s.Container)
	for _, k := range sortedKeys(s.Labels) {
		parts = append(parts, "label."+k+"="+s.Labels[k])
	}
	for _, k := range sortedKeys(s.Annotations) {
		parts = append(parts, "annotation."+k+"="+s.Annotations[k])
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, ",")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseSelector reads "all" (or "") or comma-separated key=value pairs:
// id, pod, namespace, container, label.<key>, annotation.<key>.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return sel, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" || v == "" {
			return sel, fmt.Errorf("target %q: %q is not key=value", s, kv)
		}
		switch {
		case k == "id":
			sel.ID = v
		case k == "pod":
			sel.Pod = v
		case k == "namespace":
			sel.Namespace = v
		case k == "container":
			sel.Container = v
		case strings.HasPrefix(k, "label.") && len(k) > len("label."):
			if sel.Labels == nil {
				sel.Labels = map[string]string{}
			}
			sel.Labels[strings.TrimPrefix(k, "label.")] = v
		case strings.HasPrefix(k, "annotation.") && len(k) > len("annotation."):
			if sel.Annotations == nil {
				sel.Annotations = map[string]string{}
			}
			sel.Annotations[strings.TrimPrefix(k, "annotation.")] = v
		default:
			return sel, fmt.Errorf("target %q: unknown key %q (want id, pod, namespace, container, label.<k> or annotation.<k>)", s, k)
		}
	}
	return sel, nil
}

type targetKey struct{}

// WithTarget attaches the target of the work ctx is for, so points deep in
// a call (a metadata commit) can match it.
func WithTarget(ctx context.Context, t Target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}

// TargetFrom returns the target WithTarget attached, or an empty one.
func TargetFrom(ctx context.Context) Target {
	t, _ := ctx.Value(targetKey{}).(Target)
	return t
}
