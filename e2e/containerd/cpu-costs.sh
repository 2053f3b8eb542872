#!/usr/bin/env bash
# Measures the CPU time real containerd 1.6 + runc spend on the work the
# fake's CPU model charges (README, "The node's CPUs"): root needed.
#
#   cpu-costs.sh DIR    start a private containerd in DIR (containerd.sh),
#                       put it in a cpuacct cgroup of its own, and print the
#                       CPU per exec, per task start, kill and delete, and
#                       per containers list; then stop it
#
# CPU is containerd's cgroup (the daemon, its shims and their runc
# children) plus the containers' own cgroups (runc init), read from
# cpuacct.usage: CPU time, so a busy machine changes the wall time, not
# the figures (much). cgroup v1's cpuacct hierarchy is assumed.
set -euo pipefail
die() { echo "cpu-costs.sh: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 DIR"
D=$1
case $D in /*) ;; *) die "$D must be absolute";; esac
[ "$(id -u)" -eq 0 ] || die "need root (containerd, cgroups)"
HERE=$(cd "$(dirname "$0")" && pwd)
ACCT=/sys/fs/cgroup/cpuacct
[ -f $ACCT/cpuacct.usage ] || die "no cgroup v1 cpuacct hierarchy at $ACCT"
mkdir -p "$D"
CG=$ACCT/fakecontainerd-cpu-costs-$$
PID=$("$HERE/containerd.sh" start "$D" | tail -1)
cleanup() { "$HERE/containerd.sh" stop "$D" || true; rmdir "$CG" 2>/dev/null || true; }
trap cleanup EXIT
mkdir -p "$CG"
echo "$PID" >"$CG/cgroup.procs"
# ctr must see the daemon's /run (a tmpfs in its mount namespace): the fifos.
C="nsenter -t $PID -m ctr -a $D/containerd.sock -n k8s.io"
usage() {
	local t f
	t=$(cat "$CG/cpuacct.usage")
	for f in $ACCT/k8s.io/*/cpuacct.usage; do [ -f "$f" ] && t=$((t + $(cat "$f"))); done
	echo "$t"
}
$C run -d docker.io/library/busybox:latest probe0 sleep 100000 >/dev/null
sleep 1
u0=$(usage)
for i in $(seq 100); do $C task exec --exec-id "e$i" probe0 /bin/true; done
u1=$(usage)
echo "exec of /bin/true: $(((u1 - u0) / 100000)) us each"
u0=$(usage)
for i in $(seq 20); do $C container create docker.io/library/busybox:latest "c$i" sleep 100000; done
u1=$(usage)
for i in $(seq 20); do $C task start -d "c$i" >/dev/null; done
u2=$(usage)
for i in $(seq 20); do $C task kill -s SIGKILL "c$i"; done
sleep 2
u3=$(usage)
for i in $(seq 20); do $C task delete "c$i" >/dev/null 2>&1; done
u4=$(usage)
echo "container create (metadata, snapshot): $(((u1 - u0) / 20000)) us each"
echo "task start (shim start, runc create, runc start): $(((u2 - u1) / 20000)) us each"
echo "task kill and the exit: $(((u3 - u2) / 20000)) us each"
echo "task delete (runc delete, unmount, shim exit): $(((u4 - u3) / 20000)) us each"
u0=$(usage)
for i in $(seq 100); do $C containers ls >/dev/null; done
u1=$(usage)
echo "containers ls (21 containers): $(((u1 - u0) / 100000)) us each"
