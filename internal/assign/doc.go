// Package assign decides, without any API client, the address of a
// LoadBalancer Service of the address-pool class: which AddressPools are in
// use, which of them the Service may keep an address of or be given one
// from, which address it gets (Allocator, over package ipam's assignments),
// and what its AddressAssigned condition says. A refusal is a *Refusal
// error whose reason is the condition's. The address reconciler keeps the
// lock, the sync with the API server and the work queues, and writes.
package assign
