package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestManifests: the manifests for running fake nodes in a real cluster
// (deploy/base/fake-nodes.yaml, also through kustomize with and without
// the hostnet overlay) pass the API server's own validation and
// admission, `kubectl apply --dry-run=server`, on a one-node cluster.
func TestManifests(t *testing.T) {
	c := clusterUp(t, 1, "baseline")
	kubectl := func(args ...string) (string, error) {
		args = append([]string{"--kubeconfig", c.runDir + "/admin.kubeconfig"}, args...)
		out, err := exec.Command(c.env["KUBECTL"], args...).CombinedOutput()
		t.Logf("kubectl %s:\n%s", strings.Join(args[2:], " "), out)
		return string(out), err
	}
	// A server-side dry run checks namespaced objects against namespaces
	// that exist, so the namespace is created for real first.
	if _, err := kubectl("create", "namespace", "fake-nodes"); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl("apply", "--dry-run=server", "-f", "deploy/base/fake-nodes.yaml")
	if err != nil {
		t.Fatalf("dry run of deploy/base/fake-nodes.yaml: %v", err)
	}
	checkListed(t, "deploy/base/fake-nodes.yaml", out)
	// The same objects through kustomize, and with the hostnet overlay.
	for _, dir := range []string{"deploy/base", "deploy/hostnet"} {
		out, err := kubectl("apply", "--dry-run=server", "-k", dir)
		if err != nil {
			t.Fatalf("dry run of %s: %v", dir, err)
		}
		checkListed(t, dir, out)
	}
}

func checkListed(t *testing.T, what, out string) {
	t.Helper()
	for _, obj := range []string{
		"serviceaccount/fake-node", "clusterrolebinding.rbac.authorization.k8s.io/fake-node",
		"configmap/fake-node", "service/fake-node", "statefulset.apps/fake-node",
	} {
		if !strings.Contains(out, obj) || !strings.Contains(out, "(server dry run)") {
			t.Errorf("dry run of %s does not list %s (server dry run)", what, obj)
		}
	}
}
