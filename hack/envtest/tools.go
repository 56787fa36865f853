//go:build tools

// Package envtest pins the test control plane (kube-apiserver, etcd) and a
// version-matched kubectl. The binaries are built from these modules by
// `make envtest`; nothing is downloaded but Go modules.
package envtest

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
