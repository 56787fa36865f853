// Package health is netintent's active prober: it health-checks backends
// with HTTP GET, TCP connect or a gRPC health check (grpc.health.v1) on a
// schedule of one probe a period at phases spread over it, applies thresholds before declaring a backend healthy
// or unhealthy, and reports only those flips, so that a reconcile happens
// when a backend's health changes and not on every probe.
//
// Every dial goes through a guard that refuses the addresses Kubernetes
// refuses as endpoints (unspecified, loopback, link-local, multicast), checked
// on the address actually dialled, and HTTP redirects are never followed: a
// probe cannot be turned against the operator's own host or the cloud
// metadata service.
package health
