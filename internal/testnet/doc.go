// Package testnet gives tests backends at non-loopback addresses: each test
// host is a network namespace joined to the root namespace by a veth pair on
// a private /30 (10.254.N.0/30: the root side .1, the host side .2) and an
// IPv6 unique local /64 (fd6e:7465:7374:N::/64, ::1 and ::2), running a
// small HTTP, TCP and gRPC health server on both addresses that the test can
// stop and start again, or whose listeners of one address it can close
// (CloseListeners), as a backend whose one family's listener died.
//
// A Node (StartNode, NewNode) is a Kubernetes node made the same way: a
// namespace running kube-proxy against a test control plane, with test hosts
// behind it as backends and clients inside it, so that tests send traffic
// through Services as pods do.
//
// It needs root and iproute2's ip command (a Node also nftables or
// iptables); New, NewFarm and NewNode skip the test when not run as root
// ("needs root: network namespaces"). A test package that uses it calls MaybeServe first thing in its
// TestMain, because the servers are the test binary itself, run inside the
// namespace:
//
//	func TestMain(m *testing.M) {
//		testnet.MaybeServe()
//		os.Exit(m.Run())
//	}
package testnet
