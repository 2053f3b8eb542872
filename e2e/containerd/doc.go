// Package containerd is the differential suite: the same CRI session, and
// incident 1, against a private real containerd 1.6 (containerd.sh) and
// bin/fakecontainerd, compared field by field and figure by figure. It is
// a module of its own so its dependencies stay out of fakecontainerd's;
// `make e2e-containerd` runs it (root, Linux, no network).
package containerd
