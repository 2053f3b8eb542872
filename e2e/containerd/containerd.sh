#!/usr/bin/env bash
# A private containerd for the differential suite (e2e/containerd): Debian's
# 1.6, or the build $CONTAINERD names (build-containerd.sh makes a 2.x one),
# with the shim and ctr beside it.
#
#   containerd.sh install      apt-get Debian's containerd, runc, strace, busybox-static if missing
#   containerd.sh start DIR    write DIR/config.toml, start containerd on DIR/containerd.sock
#                              (root, state, runc root, opt, sockets all under DIR), import the
#                              local images; prints the daemon's pid (also in DIR/containerd.pid)
#   containerd.sh stop DIR     kill every task, stop the daemon and its shims, by pid
#
# Nothing touches the machine's /run/containerd or /var/lib/containerd: the
# daemon runs in a private mount namespace with a tmpfs over /run, because
# 1.6's shims put their sockets under /run/containerd/s whatever the config
# says. No network: the images are built here from busybox-static and
# imported with ctr. The logs stay in DIR (the suite copies them to _logs/).
set -euo pipefail

# The images the suite uses, under the names containerd and fakecontainerd
# both normalise to.
BUSYBOX_IMAGE=docker.io/library/busybox:latest
PAUSE_IMAGE=registry.k8s.io/pause:3.10

die() { echo "containerd.sh: $*" >&2; exit 1; }

# $CONTAINERD names another containerd build (a 2.x one, say): its shim
# and ctr are the ones beside it, first on PATH, since containerd looks the
# shim up on PATH and a 2.x daemon must not run Debian's 1.6 shim.
if [ -n "${CONTAINERD:-}" ]; then
	CONTAINERD=$(readlink -f "$CONTAINERD")
	[ -x "$CONTAINERD" ] || die "CONTAINERD=$CONTAINERD is not an executable"
	bindir=$(dirname "$CONTAINERD")
	[ -x "$bindir/containerd-shim-runc-v2" ] || die "no containerd-shim-runc-v2 beside $CONTAINERD"
	export PATH=$bindir:$PATH
fi

install() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	command -v strace >/dev/null || missing+=(strace)
	[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || missing+=(busybox-static)
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${missing[*]}"
	# The package's postinst would start a containerd service where an init
	# system allows it; we never talk to that one (our socket is ours), and
	# we do not leave one running that we started: whatever containerd the
	# install starts is stopped by its pid.
	local before after pid
	before=$(pgrep -x containerd || true)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	after=$(pgrep -x containerd || true)
	for pid in $after; do
		grep -qx "$pid" <<<"$before" || { echo "containerd.sh: stopping the packaged containerd the install started (pid $pid)" >&2; kill "$pid" || true; }
	done
}

# image DIR NAME ENTRYPOINT... writes DIR/NAME.tar, a docker archive of one
# layer: busybox-static and its applet links.
image() {
	local dir=$1 name=$2 ref=$3; shift 3
	local work=$dir/img-$name
	rm -rf "$work"; mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev" "$work/rootfs/etc"
	cp /bin/busybox "$work/rootfs/bin/busybox"
	local applet
	for applet in sh sleep top echo true false cat ls ps kill env id hostname; do
		ln -s busybox "$work/rootfs/bin/$applet"
	done
	# A fixed mtime and owner: the same busybox gives the same digests.
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/layer.tar" .
	local diff entry cfg
	diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	local a; entry=
	for a in "$@"; do a=${a//\\/\\\\}; entry+="\"${a//\"/\\\"}\","; done; entry="[${entry%,}]"
	printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"User":"%s","WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"e2e/containerd/containerd.sh"}]}' "$entry" "${IMAGE_USER:-}" "$diff" >"$work/config.json"
	cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
	mkdir -p "$work/out/$diff"
	mv "$work/layer.tar" "$work/out/$diff/layer.tar"
	mv "$work/config.json" "$work/out/$cfg.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$ref" "$diff" >"$work/out/manifest.json"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/out" -cf "$dir/$name.tar" .
	rm -rf "$work"
}

config() {
	local dir=$1
	cat <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0
# Plugins that would look for the machine's devices or filesystems.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = "$dir/debug.sock"
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The sandbox has no CAP_SYS_RESOURCE: runc could not raise oom_score_adj.
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$dir/runc"
        SystemdCgroup = false
  # No CNI: the suite's pods use the host network.
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$dir/cni/bin"
    conf_dir = "$dir/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
TOML
}

start() {
	local dir=$1
	[ -d "$dir" ] || die "start: $dir is not a directory"
	case $dir in /*) ;; *) die "start: $dir must be absolute";; esac
	[ ! -e "$dir/containerd.pid" ] || ! kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || die "start: a containerd already runs for $dir (pid $(cat "$dir/containerd.pid"))"
	mkdir -p "$dir/cni/bin" "$dir/cni/net.d" "$dir/certs.d" "$dir/opt" "$dir/runc"
	config "$dir" >"$dir/config.toml"
	# Every registry the suite names resolves to a closed loopback port: a
	# pull fails at once instead of reaching out.
	local reg
	for reg in docker.io registry.k8s.io; do
		mkdir -p "$dir/certs.d/$reg"
		printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' >"$dir/certs.d/$reg/hosts.toml"
	done
	# unshare execs containerd: the pid we record is the daemon's.
	setsid unshare --mount --propagation private sh -c 'mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/containerd && exec "$2" --config "$1"' sh "$dir/config.toml" "${CONTAINERD:-containerd}" \
		>>"$dir/containerd.log" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$dir/containerd.pid"
	local i
	for i in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || { tail -n 30 "$dir/containerd.log" >&2; die "start: containerd (pid $pid) exited"; }
		[ -S "$dir/containerd.sock" ] && ctr -a "$dir/containerd.sock" version >/dev/null 2>&1 && break
		sleep 0.2
	done
	ctr -a "$dir/containerd.sock" version >/dev/null 2>&1 || die "start: containerd (pid $pid) not answering on $dir/containerd.sock; log $dir/containerd.log"
	image "$dir" busybox "$BUSYBOX_IMAGE" /bin/sh
	# The pause image runs as 65535, as registry.k8s.io/pause does.
	IMAGE_USER=65535 image "$dir" pause "$PAUSE_IMAGE" /bin/sh -c 'trap "exit 0" TERM INT; while :; do sleep 1; done'
	ctr -a "$dir/containerd.sock" -n k8s.io images import "$dir/busybox.tar" >>"$dir/containerd.log" 2>&1 || die "start: import busybox"
	ctr -a "$dir/containerd.sock" -n k8s.io images import "$dir/pause.tar" >>"$dir/containerd.log" 2>&1 || die "start: import pause"
	echo "$pid"
}

# The shims this daemon started: their command line names our socket.
shims() {
	local dir=$1 p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -- "-address $dir/containerd.sock " && echo "${p#/proc/}"
	done
	return 0
}

stop() {
	local dir=$1 pid t shim
	[ -f "$dir/containerd.pid" ] || return 0
	pid=$(cat "$dir/containerd.pid")
	if kill -0 "$pid" 2>/dev/null; then
		# Every task first, so no container outlives its shim.
		for t in $(ctr -a "$dir/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$dir/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
		done
		sleep 0.5
		for t in $(ctr -a "$dir/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
			timeout 10 ctr -a "$dir/containerd.sock" -n k8s.io tasks rm -f "$t" >/dev/null 2>&1 || true
		done
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	for shim in $(shims "$dir"); do kill -9 "$shim" 2>/dev/null || true; done
	# The pods' cgroup parent (the suite's, named after DIR), deepest first.
	local cg
	for cg in /sys/fs/cgroup/*/"fakecontainerd-e2e-$(basename "$dir")" /sys/fs/cgroup/"fakecontainerd-e2e-$(basename "$dir")"; do
		[ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	rm -f "$dir/containerd.pid"
}

case ${1:-} in
install) install ;;
start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
*) die "usage: $0 install | start DIR | stop DIR" ;;
esac
