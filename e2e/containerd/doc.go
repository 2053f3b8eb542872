// Package containerd is the differential suite: the same CRI session, and
// incident 1, against a private real containerd (containerd.sh: Debian's
// 1.6, or the build $CONTAINERD names, such as the 2.x one
// build-containerd.sh makes) and bin/fakecontainerd with its
// containerd_version set to the real one's release line, compared field by
// field and figure by figure. It is a module of its own so its
// dependencies stay out of fakecontainerd's; `make e2e-containerd` runs it
// (root, Linux, no network), `make e2e-containerd-2` against 2.2.7.
package containerd
