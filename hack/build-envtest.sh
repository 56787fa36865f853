#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, etcd), a version-matched
# kubectl and kube-proxy (the dataplane of the dataplane tests and of
# `make run-node`) from the pinned Go modules in hack/envtest into $1
# (default bin/k8s).
# A binary that is already there is kept, so a second run costs nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/bin/k8s}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
k8s_version=v1.37.2
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/client-go/pkg/version.gitVersion=${k8s_version} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=37"
cd "$root/hack/envtest"
build() { # name package
  if [[ -x "$out/$1" ]]; then return 0; fi
  echo "building $1 (first time only; kube-apiserver takes a few minutes)" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$1.tmp" "$2"
  mv "$out/$1.tmp" "$out/$1"
}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-proxy k8s.io/kubernetes/cmd/kube-proxy
echo "$out"
