#!/usr/bin/env bash
# Ensures containerd, containerd-shim-runc-v2 and ctr of a containerd 2.x
# release, built from the Go module proxy, are in the cache (outside the
# checkout) and prints the daemon's path. A second run finds them and builds
# nothing. containerd.sh takes the shim and ctr from beside the daemon.
#
#   build-containerd.sh
#
#   CONTAINERD_VERSION  release to build (default v2.2.7)
#   CONTAINERD_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/fakecontainerd);
#                       the binaries go to $CONTAINERD_CACHE/containerd-$CONTAINERD_VERSION/
#
# The snapshotters that need C libraries or devices (btrfs, devmapper, zfs)
# are left out by build tags; the differential suite uses overlayfs. About
# 9 minutes on two busy cores. The version the daemon reports is
# "<version>+unknown" (no git metadata in a module build).
set -euo pipefail

CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.2.7}
CACHE=${CONTAINERD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fakecontainerd}
GO=${GO:-go}
out=$CACHE/containerd-$CONTAINERD_VERSION
bins=(containerd containerd-shim-runc-v2 ctr)

complete() {
	local b
	for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done
}

case $CONTAINERD_VERSION in
v2.*) ;;
*) echo "build-containerd.sh: CONTAINERD_VERSION=$CONTAINERD_VERSION: only 2.x releases (github.com/containerd/containerd/v2) build here" >&2; exit 2 ;;
esac

if ! complete; then
	mkdir -p "$CACHE"
	# The cache's one build lock (e2e/kubelet/build-kubelet.sh takes it
	# too): two builds never share the cores at once.
	exec 9>"$CACHE/.build.lock"
	flock 9
fi
if ! complete; then
	echo "building containerd $CONTAINERD_VERSION into $out (first run only; takes a while)" >&2
	mkdir -p "$out"
	pkgs=()
	for b in "${bins[@]}"; do pkgs+=("github.com/containerd/containerd/v2/cmd/$b@$CONTAINERD_VERSION"); done
	GOBIN=$out "$GO" install -tags 'no_btrfs no_devmapper no_zfs' "${pkgs[@]}"
	complete || { echo "build-containerd.sh: build of $CONTAINERD_VERSION left $out incomplete" >&2; exit 1; }
fi
echo "$out/containerd"
