#!/usr/bin/env bash
# A local Kubernetes cluster whose nodes are real kubelets on fakecontainerd:
# etcd (Debian's etcd-server) + kube-apiserver + kube-controller-manager +
# kube-scheduler, all on 127.0.0.1 with x509 client certificates and
# Node,RBAC authorization, and N nodes, each a kubelet on its own
# fakecontainerd with its own fix set.
#
#   cluster.sh up [-n NODES] [-a ARMS] [--names fk|loopback]
#                                        start it (ARMS: comma list, see below;
#                                        loopback: nodes named 127.0.1.I, for
#                                        kubectl logs/exec, see node_name)
#   cluster.sh down                      stop every process by its pid, clean up
#   cluster.sh status                    processes, nodes
#   cluster.sh nodes [SELECTOR]          node names: all, NAME[,NAME..], label K=V, or count:N
#   cluster.sh fault SELECTOR ARGS...    `fakecontainerd fault ARGS` on every selected node
#   cluster.sh fix SELECTOR ARGS...      `fakecontainerd fix ARGS` on every selected node
#   cluster.sh env                       the variables of a running cluster (sourceable)
#   cluster.sh real-node [-i IMAGE.tar].. [NAME]
#                                        add a node backed by a real runtime (root): a
#                                        kubelet on a private Debian containerd 1.6
#                                        (e2e/containerd/containerd.sh), host-network
#                                        pods (others get only lo), IMAGE.tar imported into its k8s.io
#                                        namespace; NAME defaults to real-1
#
# An arm is a node's fakecontainerd configuration: "baseline" (the embedded
# default), or fix names joined by "+" (stopping_state, volatile+list_index,
# ...) switched on at start, optionally followed by @FILE, a fakecontainerd
# config (faults armed at start, any other key) that node reads on top of
# the default; node i gets arm i of ARMS, cycling. Each node carries the
# label fakecontainerd.io/arm=<arm> (characters a label value cannot hold
# written as ".").
#
# Everything lives in RUN_DIR (default <checkout>/.run/cluster): certificates,
# kubeconfigs, etcd's data, every node's fakecontainerd and kubelet
# directories, logs (RUN_DIR/logs, kept by `down`), pid files. Outside it,
# only what kubelet insists on: its links in /var/log/containers (removed by
# `down`). `up` raises fs.inotify.max_user_instances and max_user_watches
# when they leave too little room for NODES kubelets (as root: each kubelet
# holds 6 inotify instances; the limit is per user) and says so.
#
# Environment: FAKECONTAINERD (default <checkout>/bin/fakecontainerd),
# KUBE_VERSION (v1.36.3), GO, KUBELET_CACHE (see build-kubelet.sh), RUN_DIR,
# PORT_BASE (first port tried, default 16000; busy ones are skipped),
# FCD_LOG_LEVEL (the fakecontainerds' log level, default debug: the
# incident's report reads the exit monitor's "received exit event" lines).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUN_DIR=${RUN_DIR:-$repo/.run/cluster}
FAKECONTAINERD=${FAKECONTAINERD:-$repo/bin/fakecontainerd}
KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
PORT_BASE=${PORT_BASE:-16000}
ARM_LABEL=fakecontainerd.io/arm

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }

# --- binaries ---

ensure_binaries() {
	[ -x "$FAKECONTAINERD" ] || die "fakecontainerd binary $FAKECONTAINERD missing (make build)"
	if ! command -v etcd >/dev/null; then
		[ "$(id -u)" = 0 ] || die "etcd missing and not root: apt-get install etcd-server"
		log "installing Debian's etcd-server"
		# Its package enables a systemd unit; without systemd nothing starts.
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >&2
	fi
	command -v openssl >/dev/null || die "openssl missing: apt-get install openssl"
	command -v ss >/dev/null || die "ss missing: apt-get install iproute2"
	local paths
	paths=$(KUBE_VERSION=$KUBE_VERSION "$repo/e2e/kubelet/build-kubelet.sh" \
		kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl)
	read -r -d '' KUBELET APISERVER CONTROLLER_MANAGER SCHEDULER KUBECTL <<<"$paths" || true
}

# --- ports ---

# alloc_port VAR: sets VAR to the next port from PORT_BASE that no TCP
# socket uses. Not in a subshell: it keeps its state in busy/next_port.
declare -A busy=()
next_port=$PORT_BASE
alloc_port() {
	if [ ${#busy[@]} -eq 0 ]; then
		local p
		for p in $(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }'); do busy[$p]=1; done
		busy[0]=1
	fi
	while [ -n "${busy[$next_port]:-}" ]; do next_port=$((next_port + 1)); done
	busy[$next_port]=1
	printf -v "$1" %d "$next_port"
}

# --- certificates (openssl, ECDSA P-256) ---

pki=""
new_ca() {
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=fakecontainerd-cluster-ca" -days 3650 2>/dev/null
}

# cert NAME CN ORG USAGE [SAN]: a certificate signed by the CA.
cert() {
	local name=$1 cn=$2 org=$3 usage=$4 san=${5:-} subj ext
	subj="/CN=$cn"
	[ -z "$org" ] || subj="/O=$org$subj"
	ext=$(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' "$usage")
	[ -z "$san" ] || ext+=$'\n'"subjectAltName=$san"
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$pki/$name.key" -out "$pki/$name.csr" -subj "$subj" 2>/dev/null
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
		-set_serial "0x$(openssl rand -hex 12)" -days 3650 -out "$pki/$name.crt" \
		-extfile <(echo "$ext") 2>/dev/null
	rm -f "$pki/$name.csr"
}

# kubeconfig FILE CERTNAME: a kubeconfig for the API server with that client cert.
kubeconfig() {
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fakecontainerd
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: fakecontainerd
  context: {cluster: fakecontainerd, user: $2}
current-context: fakecontainerd
EOF
}

# --- processes ---

# start NAME LOG BIN ARGS...: runs BIN in its own session (so it outlives
# this script and make), records its pid.
start() {
	local name=$1 logf=$2
	shift 2
	echo "# $*" >"$logf"
	setsid "$@" >>"$logf" 2>&1 </dev/null &
	echo $! >"$RUN_DIR/pids/$name.pid"
}

# alive NAME: the recorded pid runs a command line that mentions RUN_DIR
# (so a reused pid is never signalled).
alive() {
	local pid
	pid=$(cat "$RUN_DIR/pids/$1.pid" 2>/dev/null) || return 1
	[ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$RUN_DIR"
}

# wait_until SECONDS WHAT CMD...: polls CMD every 0.2 s.
wait_until() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$(($(date +%s) + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${secs}s waiting for $what (logs in $RUN_DIR/logs)"
		sleep 0.2
	done
}

kctl() { "$KUBECTL" --kubeconfig "$RUN_DIR/admin.kubeconfig" "$@"; }

# --- up ---

# raise_limits N: every kubelet holds 6 inotify instances and the limit is
# per user (root's is shared with everything else root runs), so make room
# for N kubelets on top of what is in use.
raise_limits() {
	local n=$1 want_inst want_watch cur used
	used=$( (find /proc/[0-9]*/fd -lname 'anon_inode:inotify' 2>/dev/null || true) | wc -l)
	want_inst=$((used + 8 * n + 128)) want_watch=$((8192 * n + 524288))
	cur=$(cat /proc/sys/fs/inotify/max_user_instances)
	if [ "$cur" -lt "$want_inst" ]; then
		[ "$(id -u)" = 0 ] || die "$n kubelets need fs.inotify.max_user_instances >= $want_inst (now $cur); run as root or raise it"
		log "raising fs.inotify.max_user_instances $cur -> $want_inst (as root; 6 per kubelet)"
		echo "$want_inst" >/proc/sys/fs/inotify/max_user_instances
	fi
	cur=$(cat /proc/sys/fs/inotify/max_user_watches)
	if [ "$cur" -lt "$want_watch" ]; then
		[ "$(id -u)" = 0 ] || die "$n kubelets need fs.inotify.max_user_watches >= $want_watch (now $cur)"
		log "raising fs.inotify.max_user_watches $cur -> $want_watch (as root)"
		echo "$want_watch" >/proc/sys/fs/inotify/max_user_watches
	fi
}

# arm_fixes ARM: the arm's fixes, comma-separated ("" for baseline).
arm_fixes() {
	local f=${1%%@*}
	[ "$f" = baseline ] || echo "${f//+/,}"
}

# arm_label ARM: the arm as a label value.
arm_label() {
	local v=$1 file
	if [[ $v == *@* ]]; then
		file=$(basename "${v#*@}")
		v=${v%%@*}.${file%.toml}
	fi
	v=$(printf %s "$v" | tr -c 'A-Za-z0-9_.-' '.' | cut -c1-63)
	v=${v##[._-]}
	echo "${v%%[._-]}"
}

# fake_config ARM CIDR: a node's config: the arm's @FILE if any, with the
# node's pod_cidr merged into its [plugins."io.fakecontainerd.v1"] table (a
# TOML table may appear only once). The fixes go on the command line.
fake_config() {
	local arm=$1 cidr=$2 file="" table='[plugins."io.fakecontainerd.v1"]'
	[[ $arm != *@* ]] || file=${arm#*@}
	echo "# fakecontainerd of one cluster node, arm $arm (read on top of the default)."
	if [ -z "$file" ]; then
		printf '%s\n  pod_cidr = "%s"\n' "$table" "$cidr"
		return
	fi
	[ -r "$file" ] || die "arm $arm: cannot read $file"
	if grep -q '^[[:space:]]*pod_cidr[[:space:]]*=' "$file"; then
		cat "$file"
	elif grep -qF "$table" "$file"; then
		awk -v t="$table" -v c="$cidr" '{ print } $0 == t { printf "  pod_cidr = \"%s\"\n", c }' "$file"
	else
		cat "$file"
		printf '\n%s\n  pod_cidr = "%s"\n' "$table" "$cidr"
	fi
}

kubelet_config() { # NODEDIR SOCKET PORT RO HZ ADDRESS
	cat <<EOF
{
  "apiVersion": "kubelet.config.k8s.io/v1beta1",
  "kind": "KubeletConfiguration",
  "failCgroupV1": false,
  "cgroupsPerQOS": false,
  "enforceNodeAllocatable": [],
  "failSwapOn": false,
  "cgroupDriver": "cgroupfs",
  "localStorageCapacityIsolation": false,
  "address": "$6",
  "port": $3,
  "readOnlyPort": $4,
  "healthzBindAddress": "127.0.0.1",
  "healthzPort": $5,
  "podLogsDir": "$1/pod-logs",
  "clusterDomain": "cluster.local",
  "authentication": {
    "x509": {"clientCAFile": "$pki/ca.crt"},
    "webhook": {"enabled": true},
    "anonymous": {"enabled": false}
  },
  "authorization": {"mode": "Webhook"},
  "containerRuntimeEndpoint": "unix://$2"
}
EOF
}

up() {
	local nodes=3 arms=baseline names=${NAMES:-fk}
	while [ $# -gt 0 ]; do
		case $1 in
		-n | --nodes) nodes=$2; shift 2 ;;
		-a | --arms) arms=$2; shift 2 ;;
		--names) names=$2; shift 2 ;;
		*) die "up: unknown argument $1" ;;
		esac
	done
	[[ $nodes =~ ^(0|[1-9][0-9]*)$ ]] && [ "$nodes" -le 250 ] || die "up: NODES must be 0..250 (0: the control plane alone), got '$nodes'"
	case $names in fk | loopback) ;; *) die "up: --names must be fk or loopback, got '$names'" ;; esac
	IFS=, read -r -a armlist <<<"$arms"
	[ ${#armlist[@]} -gt 0 ] || die "up: ARMS is empty"
	local a
	[ -x "$FAKECONTAINERD" ] || die "fakecontainerd binary $FAKECONTAINERD missing (make build)"
	for a in "${armlist[@]}"; do
		# fakecontainerd itself names an unknown fix or a bad key.
		printf '[plugins."io.fakecontainerd.v1"]\n  fixes = [%s]\n' "$(arm_fixes "$a" | sed 's/[^,][^,]*/"&"/g')" |
			"$FAKECONTAINERD" config check /dev/stdin >/dev/null ||
			die "up: arm '$a': want baseline or fix names joined by +, optionally followed by @FILE"
		fake_config "$a" 10.100.0.0/24 | "$FAKECONTAINERD" config check /dev/stdin >/dev/null ||
			die "up: arm '$a': its config is not valid"
	done
	if [ -f "$RUN_DIR/cluster.env" ]; then
		die "a cluster is already up in $RUN_DIR (cluster.sh down first)"
	fi
	[ ${#RUN_DIR} -le 60 ] || die "RUN_DIR $RUN_DIR is too long for kubelet's unix sockets (at most 60 characters)"
	ensure_binaries
	raise_limits "$nodes"
	# A failed up stops whatever it started.
	trap 'rc=$?; if [ $rc -ne 0 ]; then log "up failed (exit $rc): stopping what it started"; down; fi' EXIT

	local t0=$SECONDS
	mkdir -p "$RUN_DIR"/{pki,pids,nodes,bin}
	rm -rf "$RUN_DIR/logs"
	mkdir -p "$RUN_DIR/logs"
	pki=$RUN_DIR/pki
	# Kubelet insists on two fixed places: the device plugin socket in
	# /var/lib/kubelet/device-plugins and its links in /var/log/containers.
	# `down` removes what it finds there of ours, and the folders if this
	# cluster created them.
	local d
	for d in /var/lib/kubelet /var/log/containers; do
		[ -e "$d" ] || echo "$d" >>"$RUN_DIR/created"
	done
	ln -sf "$KUBECTL" "$RUN_DIR/bin/kubectl"

	local ETCD_PEER_PORT KCM_PORT SCHED_PORT kport roport hzport
	alloc_port ETCD_PORT
	alloc_port ETCD_PEER_PORT
	alloc_port API_PORT
	alloc_port KCM_PORT
	alloc_port SCHED_PORT

	new_ca
	cert apiserver kube-apiserver "" serverAuth \
		"IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert admin admin system:masters clientAuth
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth
	cert controller-manager system:kube-controller-manager "" clientAuth
	cert scheduler system:kube-scheduler "" clientAuth
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
	openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	kubeconfig "$RUN_DIR/admin.kubeconfig" admin
	kubeconfig "$RUN_DIR/controller-manager.kubeconfig" controller-manager
	kubeconfig "$RUN_DIR/scheduler.kubeconfig" scheduler

	start etcd "$RUN_DIR/logs/etcd.log" etcd --name fakecontainerd --data-dir "$RUN_DIR/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "fakecontainerd=http://127.0.0.1:$ETCD_PEER_PORT" --logger=zap --log-level=warn
	start kube-apiserver "$RUN_DIR/logs/kube-apiserver.log" "$APISERVER" \
		--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
		--tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/16 \
		--kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
		--allow-privileged=true \
		--profiling=false
	cat >"$RUN_DIR/cluster.env" <<EOF
RUN_DIR=$RUN_DIR
KUBECONFIG=$RUN_DIR/admin.kubeconfig
KUBECTL=$KUBECTL
FAKECONTAINERD=$FAKECONTAINERD
API_PORT=$API_PORT
ETCD_PORT=$ETCD_PORT
EOF
	wait_until 60 "kube-apiserver /readyz" kctl get --raw /readyz
	log "kube-apiserver ready on https://127.0.0.1:$API_PORT ($((SECONDS - t0))s)"

	start kube-controller-manager "$RUN_DIR/logs/kube-controller-manager.log" "$CONTROLLER_MANAGER" \
		--kubeconfig="$RUN_DIR/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$RUN_DIR/controller-manager.kubeconfig" --authorization-kubeconfig="$RUN_DIR/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
		--service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" --use-service-account-credentials=true \
		--cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
		--profiling=false
	start kube-scheduler "$RUN_DIR/logs/kube-scheduler.log" "$SCHEDULER" \
		--kubeconfig="$RUN_DIR/scheduler.kubeconfig" \
		--authentication-kubeconfig="$RUN_DIR/scheduler.kubeconfig" --authorization-kubeconfig="$RUN_DIR/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false

	# The nodes: fakecontainerd first (kubelet needs its socket), all at once.
	local i name arm dir sock addr
	for i in $(seq 1 "$nodes"); do
		name=$(node_name "$names" "$i")
		arm=${armlist[$(((i - 1) % ${#armlist[@]}))]}
		dir=$RUN_DIR/nodes/$name
		mkdir -p "$dir" "$RUN_DIR/logs/$name"
		echo "$arm" >"$dir/arm"
		fake_config "$arm" "10.$((100 + i / 250)).$((i % 250)).0/24" >"$dir/fakecontainerd.toml"
		cp "$dir/fakecontainerd.toml" "$RUN_DIR/logs/$name/"
		local fixargs=()
		[ -z "$(arm_fixes "$arm")" ] || fixargs=(--fix "$(arm_fixes "$arm")")
		start "$name.fakecontainerd" "$RUN_DIR/logs/$name/fakecontainerd.log" "$FAKECONTAINERD" serve \
			--config "$dir/fakecontainerd.toml" --address "$dir/cri.sock" \
			--root "$dir/root" --state "$dir/state" --log-level "${FCD_LOG_LEVEL:-debug}" "${fixargs[@]}"
	done
	for i in $(seq 1 "$nodes"); do
		name=$(node_name "$names" "$i")
		dir=$RUN_DIR/nodes/$name
		sock=$dir/cri.sock
		arm=$(cat "$dir/arm")
		wait_until 30 "$name's fakecontainerd socket" test -S "$sock"
		cert "node-$name" "system:node:$name" system:nodes clientAuth
		kubeconfig "$dir/kubeconfig" "node-$name"
		alloc_port kport
		alloc_port roport
		alloc_port hzport
		# A loopback-named node's kubelet serves on its own loopback
		# address, the one the API server dials for logs and exec.
		addr=127.0.0.1
		[ "$names" = fk ] || addr=$name
		echo "$addr" >"$dir/address"
		kubelet_config "$dir" "$sock" "$kport" "$roport" "$hzport" "$addr" >"$dir/kubelet.json"
		cp "$dir/kubelet.json" "$RUN_DIR/logs/$name/"
		start "$name.kubelet" "$RUN_DIR/logs/$name/kubelet.log" "$KUBELET" \
			--config="$dir/kubelet.json" --kubeconfig="$dir/kubeconfig" --root-dir="$dir/kubelet" --cert-dir="$dir/kubelet/pki" \
			--hostname-override="$name" --node-labels="$ARM_LABEL=$(arm_label "$arm")" --v=2
	done
	wait_until $((60 + 2 * nodes)) "$nodes nodes Ready" all_ready "$nodes"
	wait_until 60 "the default ServiceAccount" kctl get serviceaccount default
	log "$nodes nodes Ready ($((SECONDS - t0))s from start)"
	trap - EXIT
	kctl get nodes -L "$ARM_LABEL" >&2
	cat <<EOF

export KUBECONFIG=$RUN_DIR/admin.kubeconfig PATH=$RUN_DIR/bin:\$PATH
kubectl get nodes   # kubectl $KUBE_VERSION, built with the cluster
EOF
}

# node_name SCHEME I: fk-I, or with "loopback" the address 127.0.1.I. The
# API server dials a node by its Hostname address first (the node name),
# and kubelet refuses a loopback node IP but not a loopback name, so
# loopback names make kubectl logs/exec/port-forward reach kubelet on
# loopback.
node_name() {
	if [ "$1" = loopback ]; then echo "127.0.1.$2"; else echo "fk-$2"; fi
}

all_ready() {
	local n
	n=$(kctl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')
	[ "$n" -ge "$1" ]
}

# --- down ---

stop_pids() { # LABEL NAME...
	local what=$1 name pid pids=() deadline
	shift
	for name in "$@"; do
		alive "$name" || continue
		pid=$(cat "$RUN_DIR/pids/$name.pid")
		kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
	done
	local t0=$SECONDS
	deadline=$(($(date +%s) + 20))
	for pid in "${pids[@]}"; do
		while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid did not stop on SIGTERM; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	[ ${#pids[@]} -eq 0 ] || log "stopped $what (${#pids[@]} processes) in $((SECONDS - t0))s"
}

# other_kubelets: some kubelet still runs on this machine.
other_kubelets() {
	local e
	for e in /proc/[0-9]*/exe; do
		[ "$(basename "$(readlink "$e" 2>/dev/null)")" = kubelet ] && return 0
	done
	return 1
}

down() {
	[ -d "$RUN_DIR/pids" ] || { log "no cluster in $RUN_DIR"; return 0; }
	local names=()
	mapfile -t names < <(cd "$RUN_DIR/pids" && ls -- *.kubelet.pid 2>/dev/null | sed 's/\.pid$//')
	stop_pids kubelets "${names[@]}"
	stop_real_nodes
	mapfile -t names < <(cd "$RUN_DIR/pids" && ls -- *.fakecontainerd.pid 2>/dev/null | sed 's/\.pid$//')
	stop_pids fakecontainerds "${names[@]}"
	stop_pids "scheduler and controller-manager" kube-scheduler kube-controller-manager
	stop_pids kube-apiserver kube-apiserver
	stop_pids etcd etcd
	# kubelet bind-mounts its root dir onto itself and leaves mounts
	# (tmpfs for secrets) under it: detach them, deepest first.
	awk -v d="$RUN_DIR/" 'index($5, d) == 1 { print length($5), $5 }' /proc/self/mountinfo |
		sort -rn | cut -d' ' -f2- | while read -r m; do umount -l "$m" || log "umount $m failed"; done
	# kubelet's links in the fixed /var/log/containers into our pod logs.
	local l
	for l in /var/log/containers/*.log; do
		[ -L "$l" ] || continue
		case $(readlink "$l") in "$RUN_DIR"/*) rm -f "$l" ;; esac
	done
	# The device plugin socket every kubelet (re)creates at a fixed path:
	# gone once no kubelet runs on the machine, ours or another's.
	if ! other_kubelets; then
		rm -f /var/lib/kubelet/device-plugins/kubelet.sock
	fi
	if [ -f "$RUN_DIR/created" ]; then
		while read -r d; do
			if [ "$d" = /var/lib/kubelet ] && ! other_kubelets; then
				rmdir "$d/device-plugins" 2>/dev/null || true
			fi
			rmdir "$d" 2>/dev/null || log "$d not removed: not empty (another kubelet's files?)"
		done <"$RUN_DIR/created"
	fi
	rm -rf "$RUN_DIR"/{nodes,real,etcd,pki,pids,bin} "$RUN_DIR"/*.kubeconfig "$RUN_DIR/cluster.env" "$RUN_DIR/created"
	log "down; logs kept in $RUN_DIR/logs"
}

# --- a node backed by a real runtime ---

# A real node: Debian's containerd 1.6 started by the differential suite's
# containerd.sh (its own root, state and sockets under RUN_DIR/real/NAME, in
# a private mount namespace with a tmpfs over /run; its only CNI network
# is a loopback interface, so host-network pods only), and a kubelet registered like the fake ones. The kubelet runs
# in containerd's mount namespace: the tmpfs and bind mounts it makes for
# volumes (service account tokens, Bidirectional propagation) must be where
# runc looks for them, and they vanish with that namespace. Its pods'
# cgroups go under /fakecontainerd-e2e-NAME (cgroupfs driver), which
# containerd.sh stop removes.
real_node() {
	local name=real-1 images=()
	while [ $# -gt 0 ]; do
		case $1 in
		-i | --image) images+=("$2"); shift 2 ;;
		-*) die "real-node: unknown flag $1" ;;
		*) name=$1; shift ;;
		esac
	done
	[[ $name =~ ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$ ]] || die "real-node: NAME must be a DNS label of at most 32 characters, got '$name'"
	[ "$(id -u)" = 0 ] || die "real-node: needs root (containerd, runc, cgroups)"
	load_env
	local img
	for img in "${images[@]}"; do [ -r "$img" ] || die "real-node: cannot read image $img"; done
	local dir=$RUN_DIR/real/$name cshell=$repo/e2e/containerd/containerd.sh
	[ ! -e "$dir/containerd.pid" ] || die "real-node: $name exists already ($dir)"
	[ ! -e "$RUN_DIR/pids/$name.kubelet.pid" ] || die "real-node: $name exists already"
	"$cshell" install
	ensure_binaries
	mkdir -p "$dir" "$RUN_DIR/logs/$name"
	# A failed real-node stops what it started of that node.
	trap 'rc=$?; if [ $rc -ne 0 ]; then log "real-node $name failed (exit $rc): stopping it"; stop_real_node "$name"; fi' EXIT
	pki=$RUN_DIR/pki
	local cpid
	# A CNI network of a loopback interface alone: containerd reports
	# NetworkReady (kubelet keeps a node without it NotReady), and a pod
	# that is not host-network gets a network namespace with only lo.
	if [ ! -x /usr/lib/cni/loopback ]; then
		log "installing Debian's containernetworking-plugins (the loopback CNI plugin)"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containernetworking-plugins >&2
	fi
	mkdir -p "$dir/cni/bin" "$dir/cni/net.d"
	ln -sf /usr/lib/cni/loopback "$dir/cni/bin/loopback"
	printf '{"cniVersion": "1.0.0", "name": "loopback-only", "plugins": [{"type": "loopback"}]}\n' >"$dir/cni/net.d/10-loopback.conflist"
	cpid=$("$cshell" start "$dir") || die "real-node: containerd for $name did not start (log $dir/containerd.log)"
	for img in "${images[@]}"; do
		ctr -a "$dir/containerd.sock" -n k8s.io images import "$img" >&2 || die "real-node: import $img into $name's containerd"
	done
	local cg=fakecontainerd-e2e-$name h
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		mkdir -p "/sys/fs/cgroup/$cg"
	else
		for h in /sys/fs/cgroup/*/; do
			[ -L "${h%/}" ] || mkdir -p "$h$cg"
		done
	fi
	cert "node-$name" "system:node:$name" system:nodes clientAuth
	kubeconfig "$dir/kubeconfig" "node-$name"
	local kport roport hzport
	alloc_port kport
	alloc_port roport
	alloc_port hzport
	kubelet_config "$dir" "$dir/containerd.sock" "$kport" "$roport" "$hzport" 127.0.0.1 |
		sed 's/"cgroupsPerQOS": false,/"cgroupsPerQOS": true,\n  "cgroupRoot": "\/'"$cg"'",/; s/"enforceNodeAllocatable": \[\],/"enforceNodeAllocatable": ["pods"],/' >"$dir/kubelet.json"
	cp "$dir/kubelet.json" "$RUN_DIR/logs/$name/"
	start "$name.kubelet" "$RUN_DIR/logs/$name/kubelet.log" nsenter --mount="/proc/$cpid/ns/mnt" -- "$KUBELET" \
		--config="$dir/kubelet.json" --kubeconfig="$dir/kubeconfig" --root-dir="$dir/kubelet" --cert-dir="$dir/kubelet/pki" \
		--hostname-override="$name" --node-labels=fakecontainerd.io/real-node=true --v=2
	wait_until 90 "real node $name Ready" node_ready "$name"
	trap - EXIT
	log "real node $name Ready (containerd pid $cpid, kubelet pid $(cat "$RUN_DIR/pids/$name.kubelet.pid"))"
	kctl get node "$name" -o wide >&2
}

node_ready() {
	[ "$(kctl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# stop_real_node NAME: its kubelet, then its containerd.
stop_real_node() {
	stop_pids "the kubelet of $1" "$1.kubelet"
	rm -f "$RUN_DIR/pids/$1.kubelet.pid"
	if [ -f "$RUN_DIR/real/$1/containerd.pid" ]; then
		"$repo/e2e/containerd/containerd.sh" stop "$RUN_DIR/real/$1" || log "stopping containerd of $1 failed"
	fi
}

# stop_real_nodes: each real node's containerd, its tasks and shims (after
# its kubelet, which down stops with the others).
stop_real_nodes() {
	local d
	for d in "$RUN_DIR"/real/*/; do
		[ -f "$d/containerd.pid" ] || continue
		"$repo/e2e/containerd/containerd.sh" stop "${d%/}" || log "stopping containerd of $(basename "$d") failed"
		cp "${d}containerd.log" "$RUN_DIR/logs/$(basename "$d")/" 2>/dev/null || true
		# Its pods' logs (the fake nodes' kubelets, in the image).
		cp -r "${d}pod-logs" "$RUN_DIR/logs/$(basename "$d")/" 2>/dev/null || true
		log "stopped the containerd of real node $(basename "$d")"
	done
}

# --- fleet ---

load_env() {
	[ -f "$RUN_DIR/cluster.env" ] || die "no cluster up in $RUN_DIR (cluster.sh up)"
	# shellcheck disable=SC1091
	. "$RUN_DIR/cluster.env"
}

# select_nodes SELECTOR: all | count:N | K=V (label) | NAME[,NAME...]
select_nodes() {
	local sel=${1:-all}
	case $sel in
	all) (cd "$RUN_DIR/nodes" && ls | sort -V) ;;
	count:*)
		local n=${sel#count:}
		[[ $n =~ ^[0-9]+$ ]] || die "selector $sel: count must be a number"
		(cd "$RUN_DIR/nodes" && ls | sort -V | head -n "$n")
		;;
	*=*) kctl get nodes -l "$sel" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort -V ;;
	*)
		local n
		for n in ${sel//,/ }; do
			[ -d "$RUN_DIR/nodes/$n" ] || die "selector $sel: no node $n"
			echo "$n"
		done
		;;
	esac
}

fleet() { # fault|fix SELECTOR ARGS...
	local cmd=$1 sel=${2:-} n rc=0
	[ $# -ge 3 ] || die "$cmd: usage: cluster.sh $cmd SELECTOR SUBCOMMAND [ARGS] (SELECTOR: all, count:N, K=V, NAME[,NAME])"
	shift 2
	load_env
	local nodes
	nodes=$(select_nodes "$sel")
	[ -n "$nodes" ] || die "$cmd: selector $sel matches no node"
	for n in $nodes; do
		echo "== $n"
		# The address goes right after the subcommand: flags end at the
		# first positional argument.
		"$FAKECONTAINERD" "$cmd" "$1" --address "$RUN_DIR/nodes/$n/cri.sock" "${@:2}" || rc=1
	done
	return $rc
}

status() {
	load_env
	local f
	for f in "$RUN_DIR"/pids/*.pid; do
		f=$(basename "$f" .pid)
		if alive "$f"; then echo "$f running (pid $(cat "$RUN_DIR/pids/$f.pid"))"; else echo "$f NOT running"; fi
	done
	kctl get nodes -L "$ARM_LABEL"
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
up) up "$@" ;;
down) down ;;
status) status ;;
env) load_env; cat "$RUN_DIR/cluster.env" ;;
real-node) real_node "$@" ;;
nodes) load_env; select_nodes "${1:-all}" ;;
fault | fix) fleet "$cmd" "$@" ;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
