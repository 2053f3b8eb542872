# fakecontainerd. `make run` serves on a socket under the checkout with the
# embedded default config; `make test` is what CI runs.
SHELL   := /bin/bash
GO      ?= go
BIN     := bin/fakecontainerd
RUN_DIR := $(CURDIR)/.run
SOCK    := $(RUN_DIR)/fakecontainerd.sock
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/fakecontainerd/fakecontainerd/server.Version=$(VERSION)

.PHONY: all build run test test-under-load vet unit clean e2e-kubelet e2e-containerd e2e-containerd-2 e2e-cluster cluster-up cluster-down cluster-status cluster-incident1 cluster-watch cluster-stats fake-node-image e2e-fake-node-image bench fuzz fuzz-short soak bench-recover crash report-check e2e-kubelet-ondemand cluster-scenario bench-fleet kubelet-matrix

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fakecontainerd

run: build
	@mkdir -p $(RUN_DIR)
	@echo "fakecontainerd: CRI socket $(SOCK)"
	@echo "  crictl --runtime-endpoint unix://$(SOCK) --image-endpoint unix://$(SOCK) version"
	$(BIN) serve --address $(SOCK) --root $(RUN_DIR)/root --state $(RUN_DIR)/state

vet:
	$(GO) vet ./...

# The whole suite, race detector on: unit tests, the incident tests (run on
# the project clock at a small time scale) and the e2e suite against the
# built binary.
#
# The output is also kept in TEST_LOG; when a test fails, the failing tests
# and their assertions are repeated at the end, so the last lines of a red
# run say what failed.
TEST_LOG ?= $(RUN_DIR)/test.log
test: vet
	@mkdir -p $(dir $(TEST_LOG)); \
	$(GO) test -race -count=1 -timeout 20m ./... 2>&1 | tee $(TEST_LOG); status=$${PIPESTATUS[0]}; \
	if [ $$status -ne 0 ]; then \
		echo; echo "=== what failed (whole output above and in $(TEST_LOG)):"; \
		grep -E -- '^(--- FAIL|FAIL|panic:)|^ +--- FAIL|_test\.go:[0-9]+:' $(TEST_LOG) | tail -n 30; \
		exit $$status; \
	fi
	@$(MAKE) --no-print-directory fuzz-short

# make test RUNS times in a row while a CPU hog keeps every core busy
# (LOAD=stress: Debian's stress-ng, installed if missing; LOAD=yes: one
# `yes` per core; LOAD=none: nothing else running). Stops at the first red
# run. Not part of make test: it shows that the suite does not depend on
# how much CPU it gets.
RUNS ?= 5
LOAD ?= stress
test-under-load:
	@set -e; mkdir -p $(RUN_DIR); hog=; \
	case "$(LOAD)" in \
	stress) command -v stress-ng >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null; }; \
		stress-ng --cpu $$(nproc) --quiet & hog=$$!;; \
	yes) for i in $$(seq $$(nproc)); do yes >/dev/null & hog="$$hog $$!"; done;; \
	none) ;; \
	*) echo "LOAD=$(LOAD): want stress, yes or none" >&2; exit 2;; \
	esac; \
	trap '[ -z "$$hog" ] || kill $$hog 2>/dev/null || true' EXIT; \
	for i in $$(seq $(RUNS)); do \
		start=$$(date +%s); \
		if $(MAKE) --no-print-directory test > $(RUN_DIR)/under-load-$$i.log 2>&1; then \
			echo "run $$i/$(RUNS) (LOAD=$(LOAD)): passed in $$(( $$(date +%s) - start ))s"; \
		else \
			echo "run $$i/$(RUNS) (LOAD=$(LOAD)): FAILED after $$(( $$(date +%s) - start ))s; its last lines ($(RUN_DIR)/under-load-$$i.log):"; \
			tail -n 40 $(RUN_DIR)/under-load-$$i.log; exit 1; \
		fi; \
	done; echo "$(RUNS) passed, 0 failed"

# Reliability (README, Reliability). Every fuzz target, as package:name;
# `make test` runs their seeds with the suite and then each briefly
# (fuzz-short); `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS   := configs:FuzzLoad faults:FuzzParseSpec scenario:FuzzParse server:FuzzListContainersFilter shim/command:FuzzParseScript shim/command:FuzzRunScript
FUZZTIME       ?= 60s
FUZZTIME_SHORT ?= 5s
# Minimizing a new input may take 60 s by default: the whole budget.
FUZZMINIMIZETIME ?= 3s
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg; \
	done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_SHORT)

# 20 clients, lifecycle, list and update calls and random faults for
# SOAK_DURATION under the race detector (make test runs 3 s of it).
SOAK_DURATION ?= 10m
soak:
	FCD_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -timeout 60m -run '^TestSoak$$' -v ./server

# Recovery of 10,000 containers, asserted under 1 s. (`make bench` is the
# CRI load benchmark, below.)
bench-recover:
	$(GO) test -count=1 -timeout 30m -run '^$$' -bench '^BenchmarkRecover10k$$' -benchtime 5x ./server

# The kill -9 loop of the e2e suite with CRASH_KILLS kills (make test: 22).
CRASH_KILLS ?= 200
crash:
	FCD_CRASH_KILLS=$(CRASH_KILLS) $(GO) test -race -count=1 -timeout 60m -run '^TestCrashLoop$$' -v ./e2e

# The CRI load benchmark (cmd/cribench): fakecontainerd against kubelet's
# fake runtime and a floor, at 1,000 and 10,000 containers; a table, or one
# JSON object with BENCH_FLAGS=--json. Then one node's density (cribench
# density: fakecontainerd alone at DENSITY_PODS pods, RSS, heap and
# goroutines) and the fleet row (bench-fleet). Not part of `make test` (a
# smoke run of it is). About three minutes on two cores, plus the fleet's;
# FLEET_NODES=0 leaves the fleet out.
BENCH_FLAGS  ?=
DENSITY_PODS ?= 110
bench: build
	$(GO) run ./cmd/cribench --fakecontainerd $(BIN) $(BENCH_FLAGS)
	$(GO) run ./cmd/cribench density --fakecontainerd $(BIN) --pods $(DENSITY_PODS)
	@if [ "$(FLEET_NODES)" != 0 ]; then $(MAKE) --no-print-directory bench-fleet; fi

# The fleet row: a local cluster (cluster.sh, below) of FLEET_NODES nodes in
# FLEET_DIR, FLEET_PODS pods per node (a Deployment of `sleep 3600`), idle
# for FLEET_SETTLE, then `fakecluster stats -row`: RSS (and PSS) and CPU per
# node, kubelet relist p99. The cluster is brought down whatever happens.
# Builds the Kubernetes binaries first when the cache lacks them (about 12
# minutes on an empty machine) and says so. 10 nodes take about 2 minutes on
# two cores, 50 about 4.
FLEET_NODES  ?= 10
FLEET_PODS   ?= 5
FLEET_SETTLE ?= 40
FLEET_DIR    ?= $(RUN_DIR)/bench-fleet
FLEET_SH     := RUN_DIR=$(FLEET_DIR) FAKECONTAINERD=$(CURDIR)/$(BIN) KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) $(CURDIR)/e2e/cluster/cluster.sh
bench-fleet: build
	@set -e; mkdir -p $(dir $(FLEET_DIR)); \
	cache=$${KUBELET_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/fakecontainerd}; missing=; \
	for b in kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl; do \
		[ -x "$$cache/$$b-$(KUBE_VERSION)/$$b" ] || missing="$$missing $$b"; \
	done; \
	if [ -n "$$missing" ]; then echo "bench-fleet: building$$missing $(KUBE_VERSION) into $$cache first (about 12 minutes)"; fi; \
	KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) e2e/kubelet/build-kubelet.sh kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl >/dev/null; \
	trap '$(FLEET_SH) down >$(FLEET_DIR).down.log 2>&1 || echo "bench-fleet: cluster down failed, see $(FLEET_DIR).down.log"' EXIT; \
	start=$$(date +%s); \
	$(FLEET_SH) up --nodes $(FLEET_NODES) >$(FLEET_DIR).up.log 2>&1 || { tail -n 20 $(FLEET_DIR).up.log; exit 1; }; \
	echo "bench-fleet: $(FLEET_NODES) nodes Ready in $$(( $$(date +%s) - start ))s"; \
	export KUBECONFIG=$(FLEET_DIR)/admin.kubeconfig; k=$(FLEET_DIR)/bin/kubectl; \
	$$k create deployment fleet --image=busybox --replicas=$$(( $(FLEET_NODES) * $(FLEET_PODS) )) -- sleep 3600 >/dev/null; \
	$$k rollout status deploy/fleet --timeout=15m >/dev/null; \
	echo "bench-fleet: $$(( $(FLEET_NODES) * $(FLEET_PODS) )) pods running; idle for $(FLEET_SETTLE)s, then 30s of stats"; \
	sleep $(FLEET_SETTLE); \
	cd e2e/cluster && $(GO) run . stats -run-dir $(FLEET_DIR) -nodes all -row

# The real-kubelet suite (e2e/kubelet, a module of its own): builds kubelet
# $(KUBE_VERSION) from k8s.io/kubernetes once into a cache outside the
# checkout (${XDG_CACHE_HOME:-~/.cache}/fakecontainerd/kubelet-<version>),
# then runs kubelet standalone against bin/fakecontainerd. Logs of every run
# are kept under e2e/kubelet/_logs/<test>/.
KUBE_VERSION      ?= v1.36.3
E2E_KUBELET_FLAGS ?= -timeout 45m -parallel 4
e2e-kubelet: build
	@kubelet=$$(cd e2e/kubelet && KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) ./build-kubelet.sh) && \
	cd e2e/kubelet && FAKECONTAINERD=$(CURDIR)/$(BIN) KUBELET=$$kubelet KUBE_VERSION=$(KUBE_VERSION) \
		$(GO) test -count=1 -v $(E2E_KUBELET_FLAGS) ./...

# The ondemand-relist-stuck scenario with a real kubelet, PLEGOnDemandRelist
# on and off side by side (e2e/kubelet/ondemand_test.go): about 5 min of
# real time per arm (kubelet's 2 min deadline and 3 min threshold are
# constants), so not part of e2e-kubelet or CI.
e2e-kubelet-ondemand: build
	@kubelet=$$(cd e2e/kubelet && KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) ./build-kubelet.sh) && \
	cd e2e/kubelet && E2E_ONDEMAND=1 FAKECONTAINERD=$(CURDIR)/$(BIN) KUBELET=$$kubelet KUBE_VERSION=$(KUBE_VERSION) \
		$(GO) test -count=1 -v -timeout 20m -run '^TestOnDemandRelist$$' ./...

# The kubelet version matrix (README, "Kubelet version matrix"): for each of
# KUBE_VERSIONS, builds that kubelet into the cache if it is not there
# (build-kubelet.sh, 6-11 min each, niced), runs TestIncident1's
# MATRIX_ARMS side by side against it (about 7 min a version, one version
# at a time) and prints one table. The arms' expectations are kubelet
# 1.36's, so they are reported, not asserted (E2E_REPORT_ONLY); a version
# that does not build or run is said so. Not in CI: too long.
KUBE_VERSIONS ?= v1.19.16 v1.36.3
MATRIX_ARMS   ?= baseline,stopping_state,stopping_state_refined
MATRIX_DIR    ?= $(CURDIR)/e2e/kubelet/_logs/matrix
kubelet-matrix: build
	@mkdir -p $(MATRIX_DIR); \
	for v in $(KUBE_VERSIONS); do \
		rm -rf $(MATRIX_DIR)/$$v; \
		if ! kubelet=$$(cd e2e/kubelet && KUBE_VERSION=$$v GO=$(GO) nice ./build-kubelet.sh 2>$(MATRIX_DIR)/build-$$v.log); then \
			echo "kubelet $$v: does not build; the end of $(MATRIX_DIR)/build-$$v.log:"; tail -n 5 $(MATRIX_DIR)/build-$$v.log; continue; \
		fi; \
		echo "kubelet $$v: incident 1, arms $(MATRIX_ARMS) (log $(MATRIX_DIR)/$$v.log)"; \
		(cd e2e/kubelet && FAKECONTAINERD=$(CURDIR)/$(BIN) KUBELET=$$kubelet KUBE_VERSION=$$v E2E_ARMS=$(MATRIX_ARMS) \
			E2E_REPORT_ONLY=1 E2E_LOG_DIR=$(MATRIX_DIR)/$$v $(GO) test -count=1 -v -timeout 30m -parallel 4 -run '^TestIncident1$$' . \
			> $(MATRIX_DIR)/$$v.log 2>&1) || { echo "  kubelet $$v: the run failed; its failures:"; \
			grep -E -- '--- FAIL|_test\.go:[0-9]+:.*(FAIL|waiting|exited)' $(MATRIX_DIR)/$$v.log | head -n 10; }; \
		grep -h 'differs from kubelet 1.36' $(MATRIX_DIR)/$$v.log | sed 's/^ */  '$$v': /' || true; \
	done; \
	cd e2e/kubelet && $(GO) run ./matrix -logs $(MATRIX_DIR)

# The differential suite (e2e/containerd, a module of its own; root, no
# network): installs Debian's containerd, runc, strace and busybox-static if
# missing, starts a private containerd 1.6 next to bin/fakecontainerd, runs
# one crictl session and incident 1 on both and prints the response-diff and
# timing tables (also in e2e/containerd/_logs/<test>/). About two minutes.
# CONTAINERD=/path/to/containerd runs it against another build (its shim and
# ctr beside it); the fake's containerd_version follows the real one's
# release line unless FAKE_CONTAINERD_VERSION (1.6, 1.7, 2.x) says otherwise.
# `make e2e-containerd-2` builds containerd $(CONTAINERD2_VERSION) from the Go
# module proxy once into the cache (e2e/containerd/build-containerd.sh, about
# 9 minutes the first time) and runs the suite against it.
E2E_CONTAINERD_FLAGS ?= -timeout 20m
CONTAINERD          ?=
CONTAINERD2_VERSION ?= v2.2.7
e2e-containerd: build
	@cd e2e/containerd && ./containerd.sh install && \
	CONTAINERD=$(if $(CONTAINERD),$(abspath $(CONTAINERD))) FAKECONTAINERD=$(CURDIR)/$(BIN) $(GO) test -count=1 -v $(E2E_CONTAINERD_FLAGS) ./... 2>&1 | \
		grep -v -E '^E[0-9]{4} .*remote_(runtime|image)\.go' ; exit $${PIPESTATUS[0]}

e2e-containerd-2:
	@ctrd=$$(CONTAINERD_VERSION=$(CONTAINERD2_VERSION) GO=$(GO) e2e/containerd/build-containerd.sh) && \
	$(MAKE) --no-print-directory e2e-containerd CONTAINERD=$$ctrd

# A cluster of fake nodes (README, "A cluster of fake nodes"): etcd, the
# Kubernetes control plane ($(KUBE_VERSION), built once into the same cache
# as the kubelet) and NODES real kubelets, each on its own fakecontainerd
# with arm i of ARMS (baseline, or fix names joined by +). Everything under
# CLUSTER_DIR; `cluster-down` stops every process by pid. SEL picks nodes
# for the commands that act on some: all, count:N, KEY=VALUE or NAME,NAME.
NODES       ?= 3
ARMS        ?= baseline
# NAMES=loopback names the nodes 127.0.1.I so that kubectl logs reaches them.
NAMES       ?= fk
SEL         ?= all
CLUSTER_DIR ?= $(RUN_DIR)/cluster
CLUSTER_SH  := RUN_DIR=$(CLUSTER_DIR) FAKECONTAINERD=$(CURDIR)/$(BIN) KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) e2e/cluster/cluster.sh
FAKECLUSTER := cd e2e/cluster && $(GO) run .
cluster-up: build
	$(CLUSTER_SH) up --nodes $(NODES) --arms $(ARMS) --names $(NAMES)
cluster-down:
	$(CLUSTER_SH) down
cluster-status:
	$(CLUSTER_SH) status
# Incident 1 on the SEL nodes at once; per node, what the API shows.
cluster-incident1:
	$(FAKECLUSTER) incident1 -run-dir $(CLUSTER_DIR) -nodes $(SEL)
# Cluster scenario files (README "Writing a cluster scenario"), all at once on
# one cluster: brought up for them (and down after) unless one is up in
# CLUSTER_DIR. KEEP=1 leaves their objects and that cluster in place.
SCENARIO ?= configs/scenarios/cluster/incident1.toml
KEEP     ?=
cluster-scenario: build
	cd e2e/cluster && FAKECONTAINERD=$(CURDIR)/$(BIN) KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) \
		$(GO) run . run -run-dir $(CLUSTER_DIR) $(if $(KEEP),-keep) $(abspath $(SCENARIO))
# Every SEL node's Ready condition, taints and pods on one timeline, for WATCH.
WATCH ?= 5m
cluster-watch:
	$(FAKECLUSTER) watch -run-dir $(CLUSTER_DIR) -nodes $(SEL) -for $(WATCH)
# RSS and CPU per process and per node, kubelet relist p99.
cluster-stats:
	$(FAKECLUSTER) stats -run-dir $(CLUSTER_DIR) -nodes $(SEL)

# The cluster suite (e2e/cluster, its own module): eight nodes running the
# cluster scenarios incident1.toml (baseline must go NotReady in the API and
# recover, the fix arms stay Ready) and node-lifecycle.toml (eviction,
# runtime down, a hung kubelet) at once. Then one loopback-named node for kubectl exec,
# attach and port-forward (about 30 s), and the fake-node image on a real
# containerd node (about 1 min). Logs under e2e/cluster/_logs/.
E2E_CLUSTER_FLAGS ?= -timeout 45m
e2e-cluster: build
	@KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) e2e/kubelet/build-kubelet.sh kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl >/dev/null
	cd e2e/cluster && FAKECONTAINERD=$(CURDIR)/$(BIN) KUBE_VERSION=$(KUBE_VERSION) \
		$(GO) test -count=1 -v $(E2E_CLUSTER_FLAGS) ./...

# The fake-node image (README, "Fake nodes in a real cluster"): kubelet
# $(KUBE_VERSION) and fakecontainerd on busybox, written as a docker-archive
# tarball by e2e/cluster/cmd/fakenode-image, no container engine needed
# (`docker load`, `podman load` or `ctr images import` it). The same
# layout as e2e/cluster/deploy/Containerfile.
FAKE_NODE_IMAGE ?= $(RUN_DIR)/fake-node-image.tar
fake-node-image: build
	@command -v busybox >/dev/null && ! ldd "$$(command -v busybox)" >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
	@mkdir -p $(dir $(FAKE_NODE_IMAGE))
	@kubelet=$$(KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) e2e/kubelet/build-kubelet.sh kubelet) && \
	cd e2e/cluster && $(GO) run ./cmd/fakenode-image -o $(abspath $(FAKE_NODE_IMAGE)) -kubelet $$kubelet \
		-fakecontainerd $(CURDIR)/$(BIN) -rootfs deploy/rootfs -busybox "$$(command -v busybox)"

# The fake-node image for real (root): a control plane alone, one node
# backed by Debian's containerd 1.6 (cluster.sh real-node) with the image
# imported, the StatefulSet of e2e/cluster/deploy/hostnet on it; its fake
# nodes must go Ready and run pods. Also part of e2e-cluster.
e2e-fake-node-image: fake-node-image
	@KUBE_VERSION=$(KUBE_VERSION) GO=$(GO) e2e/kubelet/build-kubelet.sh kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl >/dev/null
	cd e2e/cluster && FAKECONTAINERD=$(CURDIR)/$(BIN) FAKE_NODE_IMAGE=$(abspath $(FAKE_NODE_IMAGE)) KUBE_VERSION=$(KUBE_VERSION) \
		$(GO) test -count=1 -v -timeout 20m -run '^TestFakeNodeImage$$' .

clean:
	rm -rf bin $(RUN_DIR)

# The A/B HTML report in a real browser (not part of `make test`): installs
# Debian's chromium if missing, renders incident 1's report headless and
# checks the screenshot is not blank. Look at REPORT_DIR/report.png.
REPORT_DIR ?= $(CURDIR)/.run/report
report-check: build
	scenario/testdata/report-check.sh $(BIN) $(REPORT_DIR)
	FCD_REPORT_PNG=$(REPORT_DIR)/report.png $(GO) test -count=1 -run '^TestReportScreenshot$$' -v ./scenario
