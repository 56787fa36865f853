// Package assign makes, without any API client, the decisions around the
// address of a LoadBalancer Service of the address-pool class: which
// AddressPools are in use, which of them the Service may keep an address of
// or be given one from, and what its address condition says when it is given
// one or refused. Package ipam keeps the assignments; the address reconciler
// reads, applies and writes.
package assign
