package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFakeNodeImage runs the fake-node image for real, as on a user's
// cluster: a control plane alone (cluster.sh up --nodes 0), one node
// backed by a real runtime (cluster.sh real-node: a kubelet on a private
// Debian containerd 1.6 with the image imported into its k8s.io
// namespace), then the StatefulSet of deploy/ with the hostnet overlay
// (that containerd has no pod network) pinned to the real node. Its two
// pods must become two fake nodes, Ready in the API, each a real kubelet
// in the image on its fakecontainerd, and run pods: one bound by nodeName,
// one placed by the scheduler. Needs root (containerd, runc, cgroups).
// The image is $FAKE_NODE_IMAGE (make e2e-fake-node-image builds it) or
// built here by cmd/fakenode-image.
func TestFakeNodeImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a real containerd and runc")
	}
	// containerd, runc and busybox-static, if missing (and the loopback
	// CNI plugin: cluster.sh real-node).
	if out, err := exec.Command("../containerd/containerd.sh", "install").CombinedOutput(); err != nil {
		t.Fatalf("containerd.sh install: %v\n%s", err, out)
	}
	t0 := time.Now()
	phase := func(what string) { t.Logf("%s: %.1fs from the start", what, time.Since(t0).Seconds()) }
	img := fakeNodeImage(t)
	phase("image ready")
	c := clusterUp(t, 0, "baseline")
	phase("control plane up")
	sh := exec.Command("./cluster.sh", "real-node", "-i", img, "real-1")
	sh.Env = append(os.Environ(), "RUN_DIR="+c.runDir)
	out, err := sh.CombinedOutput()
	t.Logf("cluster.sh real-node:\n%s", out)
	if err != nil {
		t.Fatalf("cluster.sh real-node: %v", err)
	}
	phase("real node Ready")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if v := nodeField(ctx, t, c, "real-1", "{.status.nodeInfo.containerRuntimeVersion}"); !strings.HasPrefix(v, "containerd://1.6") {
		t.Fatalf("real-1's runtime is %q, want containerd://1.6", v)
	}

	// The overlay for this cluster on top of deploy/hostnet: two fake
	// nodes on real-1, the API server at its loopback address (no
	// cluster DNS or service proxy here), kubelets serving on loopback.
	const replicas = 2
	kdir := filepath.Join(c.runDir, "fake-nodes")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	hostnet, _ := filepath.Abs("deploy/hostnet")
	rel, err := filepath.Rel(kdir, hostnet) // kustomize takes no absolute paths
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kdir, "kustomization.yaml"), []byte(testOverlay(rel, c.env["API_PORT"], replicas)), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) error {
		args = append([]string{"--kubeconfig", c.runDir + "/admin.kubeconfig"}, args...)
		out, err := exec.CommandContext(ctx, c.env["KUBECTL"], args...).CombinedOutput()
		t.Logf("kubectl %s:\n%s", strings.Join(args[2:], " "), out)
		return err
	}
	if err := kubectl("apply", "-k", kdir); err != nil {
		t.Fatal(err)
	}
	applied := time.Now()
	var fakeNodes []string
	for i := range replicas {
		fakeNodes = append(fakeNodes, fmt.Sprintf("fake-node-%d", i))
	}
	err = poll(ctx, 4*time.Minute, func() error {
		pods, err := c.pods(ctx, "fake-nodes")
		if err != nil {
			return err
		}
		running := 0
		for _, p := range pods {
			if p.Spec.NodeName != "real-1" {
				return fmt.Errorf("pod %s is on %q, want real-1", p.Metadata.Name, p.Spec.NodeName)
			}
			if p.Status.Phase == "Running" && p.readyCond() == "True" {
				running++
			}
		}
		if running < replicas {
			return fmt.Errorf("%d of %d fake-node pods Running and Ready on real-1", running, replicas)
		}
		for _, n := range fakeNodes {
			nodes, err := c.nodes(ctx, "fakecontainerd.io/fake-node=true")
			if err != nil {
				return err
			}
			found := false
			for _, node := range nodes {
				if node.Metadata.Name == n {
					found = true
					if r := node.ready(); r.Status != "True" {
						return fmt.Errorf("node %s: Ready=%s %s", n, r.Status, r.Message)
					}
				}
			}
			if !found {
				return fmt.Errorf("node %s not registered", n)
			}
		}
		return nil
	})
	if err != nil {
		_ = kubectl("get", "pods", "-A", "-o", "wide")
		_ = kubectl("get", "nodes", "-o", "wide")
		_ = kubectl("-n", "fake-nodes", "describe", "pods")
		t.Fatalf("the fake nodes: %v", err)
	}
	t.Logf("%d fake nodes Ready %.1fs after kubectl apply", replicas, time.Since(applied).Seconds())
	phase("fake nodes Ready")
	for i, n := range fakeNodes {
		if v := nodeField(ctx, t, c, n, "{.status.nodeInfo.containerRuntimeVersion}"); !strings.HasPrefix(v, "fakecontainerd://") {
			t.Errorf("node %s's runtime is %q, want fakecontainerd", n, v)
		}
		if v := nodeField(ctx, t, c, n, "{.status.daemonEndpoints.kubeletEndpoint.Port}"); v != fmt.Sprint(10350+i) {
			t.Errorf("node %s's kubelet serves on port %s, want %d (10350 + its ordinal, the hostnet overlay)", n, v, 10350+i)
		}
		if v := nodeField(ctx, t, c, n, "{.status.nodeInfo.osImage}"); v != "fakecontainerd fake node" {
			t.Errorf("node %s's OS image is %q, want the image's os-release (fakecontainerd fake node)", n, v)
		}
	}

	// Pods on the fake nodes: one bound by nodeName, one the scheduler
	// places by its node's hostname label.
	for name, spec := range map[string]map[string]any{
		"bound":     {"nodeName": fakeNodes[0]},
		"scheduled": {"nodeSelector": map[string]string{"kubernetes.io/hostname": fakeNodes[1]}},
	} {
		spec["terminationGracePeriodSeconds"] = 1
		spec["containers"] = []map[string]any{{"name": "main", "image": podImage, "command": []string{"sleep", "3600"}}}
		if err := c.createPod(ctx, "default", map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name}, "spec": spec}); err != nil {
			t.Fatal(err)
		}
	}
	for name, node := range map[string]string{"bound": fakeNodes[0], "scheduled": fakeNodes[1]} {
		err := poll(ctx, 2*time.Minute, func() error {
			p, err := c.pod(ctx, "default", name)
			if err != nil {
				return err
			}
			if p.Spec.NodeName != node || p.Status.Phase != "Running" || p.readyCond() != "True" {
				return fmt.Errorf("pod %s on %q is %s, Ready=%s; want Running and Ready on %s", name, p.Spec.NodeName, p.Status.Phase, p.readyCond(), node)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
			continue
		}
		t.Logf("pod %s Running and Ready on fake node %s", name, node)
	}
	phase("pods Running on the fake nodes")
}

// fakeNodeImage is $FAKE_NODE_IMAGE, or the image built by
// cmd/fakenode-image from the cached kubelet and bin/fakecontainerd.
func fakeNodeImage(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FAKE_NODE_IMAGE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("FAKE_NODE_IMAGE: %v", err)
		}
		return p
	}
	fake := os.Getenv("FAKECONTAINERD")
	if fake == "" {
		fake, _ = filepath.Abs(filepath.Join("..", "..", "bin", "fakecontainerd"))
	}
	kubelet, err := exec.Command("../kubelet/build-kubelet.sh", "kubelet").Output()
	if err != nil {
		t.Fatalf("build-kubelet.sh kubelet: %v", err)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (apt-get install busybox-static): %v", err)
	}
	img := filepath.Join(t.TempDir(), "fake-node-image.tar")
	out, err := exec.Command("go", "run", "./cmd/fakenode-image", "-o", img, "-kubelet", strings.TrimSpace(string(kubelet)),
		"-fakecontainerd", fake, "-rootfs", "deploy/rootfs", "-busybox", busybox).CombinedOutput()
	t.Logf("fakenode-image:\n%s", out)
	if err != nil {
		t.Fatalf("fakenode-image: %v", err)
	}
	return img
}

// testOverlay is the kustomization that adapts deploy/hostnet to the
// local cluster.
func testOverlay(hostnet, apiPort string, replicas int) string {
	return fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
patches:
- patch: |
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: fake-node, namespace: fake-nodes}
    spec:
      replicas: %d
      template:
        spec:
          nodeSelector: {fakecontainerd.io/real-node: "true"}
          containers:
          - name: kubelet
            env:
            - {name: KUBELET_ADDRESS, value: 127.0.0.1}
- target: {kind: ConfigMap, name: fake-node}
  patch: |
    - op: replace
      path: /data/kubeconfig
      value: |
        apiVersion: v1
        kind: Config
        clusters:
        - name: cluster
          cluster:
            server: https://127.0.0.1:%s
            certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
        users:
        - name: fake-node
          user:
            tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
        contexts:
        - name: fake-node
          context: {cluster: cluster, user: fake-node}
        current-context: fake-node
`, hostnet, replicas, apiPort)
}

// nodeField reads one field of a node through kubectl's JSONPath.
func nodeField(ctx context.Context, t *testing.T, c *cluster, node, jsonpath string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, c.env["KUBECTL"], "--kubeconfig", c.runDir+"/admin.kubeconfig",
		"get", "node", node, "-o", "jsonpath="+jsonpath).Output()
	if err != nil {
		t.Fatalf("node %s %s: %v", node, jsonpath, err)
	}
	return strings.TrimSpace(string(out))
}
