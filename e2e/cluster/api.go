package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// cluster is a cluster cluster.sh brought up: its run dir and the API
// server, reached with the admin client certificate. Only the few API
// calls the tool needs, over plain HTTPS (no client-go: it would triple
// this module's build).
type cluster struct {
	runDir string
	env    map[string]string
	api    string
	http   *http.Client
}

func openCluster(runDir string) (*cluster, error) {
	c := &cluster{runDir: runDir, env: map[string]string{}}
	f, err := os.Open(filepath.Join(runDir, "cluster.env"))
	if err != nil {
		return nil, fmt.Errorf("no cluster up in %s (make cluster-up): %w", runDir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			c.env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if c.env["API_PORT"] == "" {
		return nil, fmt.Errorf("%s: no API_PORT", f.Name())
	}
	c.api = "https://127.0.0.1:" + c.env["API_PORT"]
	pki := filepath.Join(runDir, "pki")
	crt, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key"))
	if err != nil {
		return nil, fmt.Errorf("admin client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster CA %s: no certificate", filepath.Join(pki, "ca.crt"))
	}
	c.http = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{crt}, RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	return c, nil
}

// do sends one request to the API server; out, if not nil, receives the
// JSON answer.
func (c *cluster) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// The parts of v1.Node and v1.Pod the tool reads.
type condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason"`
	Message            string    `json:"message"`
	LastHeartbeatTime  time.Time `json:"lastHeartbeatTime"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

type taint struct {
	Key    string `json:"key"`
	Effect string `json:"effect"`
}

type apiNode struct {
	Metadata struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Taints []taint `json:"taints"`
	} `json:"spec"`
	Status struct {
		Conditions []condition `json:"conditions"`
	} `json:"status"`
}

func (n apiNode) ready() condition {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c
		}
	}
	return condition{Type: "Ready", Status: "Unknown", Message: "no Ready condition yet"}
}

func (n apiNode) taints() string {
	var s []string
	for _, t := range n.Spec.Taints {
		s = append(s, t.Key+":"+t.Effect)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

type apiContainerStatus struct {
	Name         string `json:"name"`
	ContainerID  string `json:"containerID"`
	RestartCount int    `json:"restartCount"`
	Ready        bool   `json:"ready"`
	State        struct {
		Running    *struct{}                `json:"running"`
		Waiting    *struct{ Reason string } `json:"waiting"`
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"terminated"`
	} `json:"state"`
}

// runtimeID is the CRI id in "containerd://<id>".
func (s apiContainerStatus) runtimeID() string {
	_, id, _ := strings.Cut(s.ContainerID, "://")
	return id
}

type apiPod struct {
	Metadata struct {
		Name              string            `json:"name"`
		Namespace         string            `json:"namespace"`
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp *time.Time        `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase             string               `json:"phase"`
		Conditions        []condition          `json:"conditions"`
		ContainerStatuses []apiContainerStatus `json:"containerStatuses"`
	} `json:"status"`
}

func (p apiPod) restarts() int {
	n := 0
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

func (p apiPod) readyCond() string {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status
		}
	}
	return "?"
}

func (c *cluster) nodes(ctx context.Context, selector string) ([]apiNode, error) {
	var list struct {
		Items []apiNode `json:"items"`
	}
	path := "/api/v1/nodes"
	if selector != "" {
		path += "?labelSelector=" + selector
	}
	err := c.do(ctx, http.MethodGet, path, nil, &list)
	return list.Items, err
}

func (c *cluster) pods(ctx context.Context, namespace string) ([]apiPod, error) {
	var list struct {
		Items []apiPod `json:"items"`
	}
	path := "/api/v1/pods" // "" is every namespace
	if namespace != "" {
		path = "/api/v1/namespaces/" + namespace + "/pods"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &list)
	return list.Items, err
}

func (c *cluster) pod(ctx context.Context, namespace, name string) (apiPod, error) {
	var p apiPod
	err := c.do(ctx, http.MethodGet, "/api/v1/namespaces/"+namespace+"/pods/"+name, nil, &p)
	return p, err
}

func (c *cluster) createPod(ctx context.Context, namespace string, manifest any) error {
	return c.do(ctx, http.MethodPost, "/api/v1/namespaces/"+namespace+"/pods", manifest, nil)
}

func (c *cluster) deletePod(ctx context.Context, namespace, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/namespaces/"+namespace+"/pods/"+name+"?gracePeriodSeconds=0", nil, nil)
}

// patch sends a JSON merge patch.
func (c *cluster) patch(ctx context.Context, path string, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.api+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("PATCH %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PATCH %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// apiLease is a node's Lease in kube-node-lease.
type apiLease struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		RenewTime *time.Time `json:"renewTime"`
	} `json:"spec"`
}

func (c *cluster) leases(ctx context.Context) ([]apiLease, error) {
	var list struct {
		Items []apiLease `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", nil, &list)
	return list.Items, err
}

// apiEvent is a core/v1 Event; recorders fill either firstTimestamp or
// eventTime.
type apiEvent struct {
	Metadata struct {
		CreationTimestamp time.Time `json:"creationTimestamp"`
	} `json:"metadata"`
	InvolvedObject struct {
		Kind      string `json:"kind"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"involvedObject"`
	Reason         string     `json:"reason"`
	Message        string     `json:"message"`
	Type           string     `json:"type"`
	Count          int        `json:"count"`
	FirstTimestamp *time.Time `json:"firstTimestamp"`
	EventTime      *time.Time `json:"eventTime"`
}

func (e apiEvent) at() time.Time {
	switch {
	case e.FirstTimestamp != nil && !e.FirstTimestamp.IsZero():
		return *e.FirstTimestamp
	case e.EventTime != nil && !e.EventTime.IsZero():
		return *e.EventTime
	}
	return e.Metadata.CreationTimestamp
}

func (c *cluster) events(ctx context.Context) ([]apiEvent, error) {
	var list struct {
		Items []apiEvent `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/events", nil, &list)
	return list.Items, err
}

// nodeDir is where cluster.sh keeps a node's sockets and configs.
func (c *cluster) nodeDir(name string) string { return filepath.Join(c.runDir, "nodes", name) }

// criSocket is a node's fakecontainerd CRI socket.
func (c *cluster) criSocket(name string) string { return filepath.Join(c.nodeDir(name), "cri.sock") }

// arm is the fix set cluster.sh started a node's fakecontainerd with.
func (c *cluster) arm(name string) string {
	data, err := os.ReadFile(filepath.Join(c.nodeDir(name), "arm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}
