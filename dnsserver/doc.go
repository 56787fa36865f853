// Package dnsserver is netintent's embedded DNS server: it answers the
// cluster's service zone (svc.<cluster-domain>) from an informer-fed index of
// Services and EndpointSlices, following the Kubernetes DNS specification, and
// forwards only the out-of-zone targets of ExternalName Services to upstream
// resolvers, with a cache. Zone data never comes from an upstream, and the
// upstream side is bounded (cache bytes and entries, questions in flight,
// brief negative caching of failures) so that abuse cannot grow it.
//
// The parts are kept apart so each can be tested alone: Index holds an
// immutable snapshot that queries read without waiting on the API; zone.Lookup
// is a pure function from a snapshot and a question to a Result; the resolver
// decides which questions are answered and carries a lookup that leads out of
// the zone through the forwarder, so one Result holds the whole CNAME chain;
// the handler only maps a Result onto a reply; the forwarder owns upstream
// I/O and its cache;
// Source feeds the Index from a controller-runtime cache; Server serves UDP and
// TCP as a manager.Runnable.
package dnsserver
