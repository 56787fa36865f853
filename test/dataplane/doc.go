// Package dataplane tests netintent through a real dataplane: kube-proxy,
// in nftables and in iptables mode, programs a test node (network namespaces
// on this machine, see testnet.Node) from the Services and EndpointSlices the
// built operator writes on a local control plane, and clients inside the node
// send requests through ClusterIPs, NodePorts and LoadBalancer addresses to
// backend hosts that the tests stop, start and make fail their health checks.
//
// It needs root, iproute2, nftables and iptables, and bin/k8s/kube-proxy
// (`make envtest`); `make test-e2e` runs it.
package dataplane
