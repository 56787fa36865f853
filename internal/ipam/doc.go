// Package ipam gives LoadBalancer addresses out of AddressPools: it parses
// pool entries, decides which pools may be used (no two used pools overlap;
// the oldest wins), and keeps the assignments of addresses to owners.
//
// It is pure: no Kubernetes client, no I/O. A controller feeds it the pools
// with SetPools, re-claims every assignment it finds on existing Services
// with Claim before it allocates anything new with Allocate (so an address
// once given stays with its Service across restarts), and publishes Counts in
// the pools' status.
//
// Memory and time are proportional to the assignments, not to the size of the
// pools: each pool keeps, per address family, an ordered set of its free gaps
// (maximal runs of free addresses), so a /8 or an IPv6 /64 costs a few bytes
// until addresses are given out of it.
package ipam
