package server

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fakecontainerd/fakecontainerd/faults"
)

// maxNamedTargets bounds how many existing objects a warning names.
const maxNamedTargets = 10

// unmatchedTarget says, when sel matches no container and no sandbox that
// exists now, which ones do exist, so that a typo in an id or a name is
// seen when the fault is armed instead of when it never fires. "" when
// something matches (or sel is "all"). Not matching is not an error: a
// fault may be armed for a pod that is yet to come.
func (c *criService) unmatchedTarget(sel faults.Selector) string {
	if sel.String() == "all" {
		return ""
	}
	var containers, pods []string
	for _, cntr := range c.containerStore.List() {
		t := c.containerTarget(cntr.ID)
		if sel.Matches(t) {
			return ""
		}
		containers = append(containers, fmt.Sprintf("%s/%s/%s (%s)", t.PodNamespace, t.PodName, t.ContainerName, shortTargetID(cntr.ID)))
	}
	for _, sb := range c.sandboxStore.List() {
		t := c.sandboxTarget(sb.ID)
		if sel.Matches(t) {
			return ""
		}
		pods = append(pods, fmt.Sprintf("%s/%s (%s)", t.PodNamespace, t.PodName, shortTargetID(sb.ID)))
	}
	msg := fmt.Sprintf("target %q matches no container or pod that exists now; the fault fires only once one does", sel.String())
	if len(containers) == 0 && len(pods) == 0 {
		return msg + " (there are none yet)"
	}
	return msg + ". Pods: " + namedList(pods) + ". Containers (namespace/pod/name): " + namedList(containers)
}

func namedList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	sort.Strings(names)
	if len(names) > maxNamedTargets {
		return strings.Join(names[:maxNamedTargets], ", ") + fmt.Sprintf(", and %d more", len(names)-maxNamedTargets)
	}
	return strings.Join(names, ", ")
}

func shortTargetID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
