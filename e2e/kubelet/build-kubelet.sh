#!/usr/bin/env bash
# Ensures binaries built from the k8s.io/kubernetes module at a pinned release
# are in the cache (outside the checkout, keyed by name and version) and
# prints their paths, one a line, in the order asked. With no arguments it
# builds kubelet. A second run finds them and builds nothing.
#
#   build-kubelet.sh [kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl ...]
#
#   KUBE_VERSION     release to build (default v1.36.3)
#   KUBELET_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/fakecontainerd);
#                    binary NAME goes to $KUBELET_CACHE/NAME-$KUBE_VERSION/NAME
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go,
# ...) at v0.0.0 and replaces them with ./staging paths that do not exist in
# the module zip, so the build module replaces each of them with the matching
# published v0.X.Y release. All binaries missing from the cache are built in
# one module, one after another, so they share the compile of the common tree.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
STAGING_VERSION=v0.${KUBE_VERSION#v1.}
CACHE=${KUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fakecontainerd}
GO=${GO:-go}
[ $# -gt 0 ] || set -- kubelet

# Where each binary lives: cmd/<name> of k8s.io/kubernetes.
declare -A pkg=(
	[kubelet]=cmd/kubelet
	[kube-apiserver]=cmd/kube-apiserver
	[kube-controller-manager]=cmd/kube-controller-manager
	[kube-scheduler]=cmd/kube-scheduler
	[kubectl]=cmd/kubectl
)
out_of() { echo "$CACHE/$1-$KUBE_VERSION/$1"; }

missing() {
	local m=()
	for b in "$@"; do
		[ -x "$(out_of "$b")" ] || m+=("$b")
	done
	echo "${m[@]}"
}

for b in "$@"; do
	[ -n "${pkg[$b]:-}" ] || { echo "build-kubelet.sh: unknown binary $b (known: ${!pkg[*]})" >&2; exit 2; }
done

todo=$(missing "$@")
if [ -n "$todo" ]; then
	mkdir -p "$CACHE"
	# One lock for the whole cache: builds of any binaries never run at once
	# (two would share the machine's cores and the Go build cache).
	exec 9>"$CACHE/.build.lock"
	flock 9
	todo=$(missing "$@") # built by a concurrent run while we waited
fi
if [ -n "$todo" ]; then
	work=$(mktemp -d "$CACHE/build.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	cd "$work"
	echo "building $todo $KUBE_VERSION in $work (first run only; takes a while)" >&2

	export GOFLAGS=-mod=mod
	"$GO" mod init fakecontainerd.local/kubeletbuild >/dev/null 2>&1
	gomod=$("$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	[ -f "$gomod" ] || { echo "no go.mod for k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }

	staging=$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$gomod" | sort -u)
	[ -n "$staging" ] || { echo "no staging modules found in $gomod" >&2; exit 1; }
	args=(-require="k8s.io/kubernetes@$KUBE_VERSION")
	for m in $staging; do
		args+=(-replace="$m=$m@$STAGING_VERSION")
	done
	minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	# Older releases need more, keyed by minor version (README, "Kubelet
	# version matrix", says what each fixes and which error it avoids).
	# k8s.io/kubernetes's own replace directives do not apply to a
	# dependency, so these restate the ones that matter.
	if [ "$minor" -le 19 ]; then
		# vbom.ml is gone: the proxy answers 403 for vbom.ml/util
		# (kubectl's sortorder); its code lives on at github.com/fvbommel/util.
		args+=(-replace="vbom.ml/util=github.com/fvbommel/util@v0.0.0-20160121211510-db5cfe13f5cc")
	fi
	if [ "$minor" -le 22 ]; then
		# reflect2 v1.0.1 (via json-iterator) reads Go's map internals
		# and crashes at run time on Go >= 1.18 (1.23 moved to v1.0.2);
		# take the one 1.36 uses.
		args+=(-require="github.com/modern-go/reflect2@v1.0.3-0.20250322232337-35a7c28c31ee")
	fi
	"$GO" mod edit "${args[@]}"
	echo "replaced $(echo "$staging" | wc -l) staging modules with $STAGING_VERSION" >&2

	ldflags="-s -w"
	ldflags+=" -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
	ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
	ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
	ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
	for b in $todo; do
		start=$(date +%s)
		"$GO" get "k8s.io/kubernetes/${pkg[$b]}@$KUBE_VERSION" >&2
		"$GO" build -trimpath -ldflags "$ldflags" -o "$work/$b" "k8s.io/kubernetes/${pkg[$b]}" >&2
		if [ "$b" = kubectl ]; then "$work/$b" version --client >&2; else "$work/$b" --version >&2; fi
		mkdir -p "$(dirname "$(out_of "$b")")"
		mv "$work/$b" "$(out_of "$b")"
		echo "built $(out_of "$b") in $(( $(date +%s) - start ))s" >&2
	done
fi
for b in "$@"; do
	out_of "$b"
done
