#!/usr/bin/env bash
# Ensures a kubelet binary built from the k8s.io/kubernetes module at a pinned
# release is in the cache (outside the checkout, keyed by version) and prints
# its path. A second run finds it and builds nothing.
#
#   KUBE_VERSION     release to build (default v1.36.3)
#   KUBELET_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/fakecontainerd)
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go,
# ...) at v0.0.0 and replaces them with ./staging paths that do not exist in
# the module zip, so the build module replaces each of them with the matching
# published v0.X.Y release.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
STAGING_VERSION=v0.${KUBE_VERSION#v1.}
CACHE=${KUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fakecontainerd}
DIR=$CACHE/kubelet-$KUBE_VERSION
OUT=$DIR/kubelet
GO=${GO:-go}

if [ -x "$OUT" ]; then
	echo "$OUT"
	exit 0
fi

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9
if [ -x "$OUT" ]; then # built by a concurrent run while we waited
	echo "$OUT"
	exit 0
fi

work=$(mktemp -d "$DIR/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "building kubelet $KUBE_VERSION in $work (first run only; takes a while)" >&2
start=$(date +%s)

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
"$GO" mod edit "${args[@]}"
echo "replaced $(echo "$staging" | wc -l) staging modules with $STAGING_VERSION" >&2

"$GO" get "k8s.io/kubernetes/cmd/kubelet@$KUBE_VERSION" >&2
minor=${KUBE_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
"$GO" build -trimpath -ldflags "$ldflags" -o "$work/kubelet" k8s.io/kubernetes/cmd/kubelet >&2
"$work/kubelet" --version >&2
mv "$work/kubelet" "$OUT"
echo "built $OUT in $(( $(date +%s) - start ))s" >&2
echo "$OUT"
