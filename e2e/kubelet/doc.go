// Package kubelet is fakecontainerd's real-kubelet end-to-end suite: it
// runs kubelet (built from k8s.io/kubernetes by build-kubelet.sh, cached
// outside the checkout) in standalone mode against bin/fakecontainerd, with
// static pods, and watches what kubelet reports. `make e2e-kubelet` at the
// repository root runs it; see README.md.
//
// It is a module of its own so that the main go.mod does not carry it.
package kubelet
