package dnsserver

import (
	"cmp"
	"errors"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/api/v1alpha1"
)

// maxTTL is the largest TTL RFC 2181 section 8 allows.
const maxTTL = 1<<31 - 1

// ErrNotSynced is returned by ReadyCheck until the index has seen every
// Service and EndpointSlice that existed when it started.
var ErrNotSynced = errors.New("dns index has not synced with the API server yet")

type serviceKind int

const (
	kindClusterIP serviceKind = iota
	kindHeadless
	kindExternalName
)

// portSpec is a port of a Service or EndpointSlice. Every port has an SRV
// record under the Service's bare name; one with a name also has its own,
// _<name>._<proto>.<service>.
type portSpec struct {
	name  string // lower case, as it appears after the leading '_'; may be empty
	proto string // "tcp", "udp" or "sctp"
	port  uint16
}

// serviceState is what the index keeps of a Service.
type serviceState struct {
	kind         serviceKind
	clusterIPs   []netip.Addr
	externalName string // lower-case FQDN
	ports        portList
	ttl          uint32
	hasTTL       bool
}

// sliceState is what the index keeps of an EndpointSlice: the Service it
// belongs to and its ready endpoints, in the order a serviceRecord keeps
// them, each carrying the slice's ports (one array shared by all). A
// Service with one slice (most of them) answers from that slice's
// endpoints as they are, so the index holds them once.
type sliceState struct {
	service   string
	endpoints []endpointRecord
}

// serviceRecord is one Service as the lookup sees it. It is never modified
// once it is in a snapshot, nor is the serviceState it shares with the
// index.
type serviceRecord struct {
	*serviceState
	// endpoints are the ready endpoints of a Service that is not an
	// ExternalName, ordered by address then host, each once. A headless
	// Service answers its name with them; every Service answers its
	// endpoints' names.
	endpoints []endpointRecord
}

type endpointRecord struct {
	host  string // the endpoint's hostname, or its address with dashes
	addr  netip.Addr
	ports portList // its slice's
}

// snapshot is an immutable view of every Service with its ready endpoints,
// by namespace then name. A new snapshot shares the namespaces that did not
// change with the one it replaces, and within the namespace that did, every
// shard but the changed Service's.
type snapshot struct {
	namespaces map[string]*namespaceRecord
	serial     uint32
}

// namespaceShards is how many maps a namespace's Services are split into by
// a hash of their name: a change copies one of them, so what it costs grows
// with a namespace's Services divided by this, not with all of them.
const namespaceShards = 64

// namespaceRecord is one namespace's Services, never modified once it is in
// a snapshot.
type namespaceRecord struct {
	services int
	shards   [namespaceShards]map[string]*serviceRecord
}

// shardOf is the shard of a Service name (FNV-1a).
func shardOf(name string) int {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return int(h % namespaceShards)
}

func (s *snapshot) service(namespace, name string) *serviceRecord {
	ns := s.namespaces[namespace]
	if ns == nil {
		return nil
	}
	return ns.shards[shardOf(name)][name]
}

// hasNamespace reports whether a namespace has a Service.
func (s *snapshot) hasNamespace(namespace string) bool {
	return s.namespaces[namespace] != nil
}

// with returns a copy of ns (nil: an empty namespace) with the Service
// name's record replaced by rec, or removed when rec is nil; nil when no
// Service is left.
func (ns *namespaceRecord) with(name string, rec *serviceRecord) *namespaceRecord {
	next := &namespaceRecord{}
	if ns != nil {
		*next = *ns
	}
	shard := shardOf(name)
	old := next.shards[shard]
	services := make(map[string]*serviceRecord, len(old)+1)
	for n, r := range old {
		services[n] = r
	}
	_, had := services[name]
	switch {
	case rec != nil:
		services[name] = rec
		if !had {
			next.services++
		}
	case had:
		delete(services, name)
		next.services--
	}
	next.shards[shard] = services
	if next.services == 0 {
		return nil
	}
	return next
}

// Index holds the Services and EndpointSlices of all namespaces and publishes
// them to the DNS lookup as an immutable snapshot. Writers serialise on a
// mutex; a query loads the current snapshot atomically and never waits for a
// writer or for the API server.
//
// Before MarkSynced, updates only accumulate: the first snapshot is built once,
// when the informers have delivered their initial lists, and until then the
// server answers SERVFAIL rather than a wrong NXDOMAIN.
type Index struct {
	mu sync.Mutex
	// services are the Services by name, each with the names of its
	// slices; an entry is kept while a slice names a Service not known
	// (yet, or any more).
	services map[types.NamespacedName]serviceEntry
	slices   map[types.NamespacedName]*sliceState
	serial   uint32

	current atomic.Pointer[snapshot]
}

// NewIndex returns an empty, unsynced Index.
func NewIndex() *Index {
	return &Index{
		services: map[types.NamespacedName]serviceEntry{},
		slices:   map[types.NamespacedName]*sliceState{},
	}
}

// UpsertService adds or replaces a Service.
func (i *Index) UpsertService(svc *corev1.Service) {
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	state := newServiceState(svc)
	i.mu.Lock()
	defer i.mu.Unlock()
	e := i.services[key]
	if e.state != nil && reflect.DeepEqual(e.state, state) {
		return
	}
	e.state = state
	i.services[key] = e
	i.publish(key)
}

// DeleteService removes a Service. Its EndpointSlices stay known, so that a
// Service recreated with the same name finds them again.
func (i *Index) DeleteService(namespace, name string) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	i.mu.Lock()
	defer i.mu.Unlock()
	e := i.services[key]
	if e.state == nil {
		return
	}
	e.state = nil
	i.setEntry(key, e)
	i.publish(key)
}

// UpsertEndpointSlice adds or replaces an EndpointSlice. It belongs to the
// Service named by its kubernetes.io/service-name label; a slice without that
// label is ignored.
func (i *Index) UpsertEndpointSlice(slice *discoveryv1.EndpointSlice) {
	key := types.NamespacedName{Namespace: slice.Namespace, Name: slice.Name}
	state := newSliceState(slice)
	i.mu.Lock()
	defer i.mu.Unlock()
	old, existed := i.slices[key]
	if existed && reflect.DeepEqual(old, state) {
		return
	}
	if existed && old.service != state.service {
		i.unlinkSlice(key, old.service)
	}
	if state.service == "" {
		if existed {
			delete(i.slices, key)
		}
		return
	}
	i.slices[key] = state
	svcKey := types.NamespacedName{Namespace: key.Namespace, Name: state.service}
	if e := i.services[svcKey]; !slices.Contains(e.slices, key.Name) {
		e.slices = append(e.slices, key.Name)
		i.services[svcKey] = e
	}
	i.publish(svcKey)
}

// DeleteEndpointSlice removes an EndpointSlice.
func (i *Index) DeleteEndpointSlice(namespace, name string) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	i.mu.Lock()
	defer i.mu.Unlock()
	old, ok := i.slices[key]
	if !ok {
		return
	}
	delete(i.slices, key)
	i.unlinkSlice(key, old.service)
}

// unlinkSlice detaches a slice from the Service it belonged to. i.mu is held.
func (i *Index) unlinkSlice(key types.NamespacedName, service string) {
	svcKey := types.NamespacedName{Namespace: key.Namespace, Name: service}
	e := i.services[svcKey]
	e.slices = slices.DeleteFunc(e.slices, func(n string) bool { return n == key.Name })
	i.setEntry(svcKey, e)
	i.publish(svcKey)
}

// MarkSynced builds the first snapshot from everything received so far and
// from then on publishes every change as it arrives.
func (i *Index) MarkSynced() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.current.Load() != nil {
		return
	}
	namespaces := map[string]*namespaceRecord{}
	for key, e := range i.services {
		if e.state == nil {
			continue
		}
		ns := namespaces[key.Namespace]
		if ns == nil {
			ns = &namespaceRecord{}
			namespaces[key.Namespace] = ns
		}
		shard := shardOf(key.Name)
		if ns.shards[shard] == nil {
			ns.shards[shard] = map[string]*serviceRecord{}
		}
		ns.shards[shard][key.Name] = i.record(key)
		ns.services++
	}
	i.current.Store(&snapshot{namespaces: namespaces, serial: i.nextSerial()})
}

// Synced reports whether MarkSynced has been called.
func (i *Index) Synced() bool {
	return i.current.Load() != nil
}

// ReadyCheck is a healthz.Checker: it fails until the index has synced.
func (i *Index) ReadyCheck(_ *http.Request) error {
	if !i.Synced() {
		return ErrNotSynced
	}
	return nil
}

// snapshot returns the current snapshot, or nil before the index has synced.
func (i *Index) snapshot() *snapshot {
	return i.current.Load()
}

// publish replaces the record of one Service in a new snapshot. Only the map
// of namespaces and the Service's shard of its namespace are copied. i.mu is
// held.
func (i *Index) publish(key types.NamespacedName) {
	old := i.current.Load()
	if old == nil {
		return
	}
	ns := old.namespaces[key.Namespace].with(key.Name, i.record(key))
	namespaces := make(map[string]*namespaceRecord, len(old.namespaces)+1)
	for name, r := range old.namespaces {
		namespaces[name] = r
	}
	if ns == nil {
		delete(namespaces, key.Namespace)
	} else {
		namespaces[key.Namespace] = ns
	}
	i.current.Store(&snapshot{namespaces: namespaces, serial: i.nextSerial()})
}

// nextSerial returns an SOA serial that grows with every snapshot and follows
// the clock where it can. i.mu is held.
func (i *Index) nextSerial() uint32 {
	now := uint32(time.Now().Unix())
	if now > i.serial {
		i.serial = now
	} else {
		i.serial++
	}
	return i.serial
}

// serviceEntry is what the index holds under a Service's name: the Service
// (nil when it is not known) and the names of the slices that name it (a
// list: a Service has one or a few).
type serviceEntry struct {
	state  *serviceState
	slices []string
}

// setEntry stores e under key, or drops it when it holds nothing. i.mu is
// held.
func (i *Index) setEntry(key types.NamespacedName, e serviceEntry) {
	if e.state == nil && len(e.slices) == 0 {
		delete(i.services, key)
		return
	}
	i.services[key] = e
}

// record joins a Service with its slices, or returns nil if the Service is not
// known. i.mu is held.
func (i *Index) record(key types.NamespacedName) *serviceRecord {
	e := i.services[key]
	if e.state == nil {
		return nil
	}
	rec := &serviceRecord{serviceState: e.state}
	if e.state.kind == kindExternalName {
		return rec
	}
	names := e.slices
	if len(names) == 1 {
		// Already ordered and unique: shared, not copied.
		if slice := i.slices[types.NamespacedName{Namespace: key.Namespace, Name: names[0]}]; slice != nil {
			rec.endpoints = slice.endpoints
		}
		return rec
	}
	for _, name := range names {
		if slice := i.slices[types.NamespacedName{Namespace: key.Namespace, Name: name}]; slice != nil {
			rec.endpoints = append(rec.endpoints, slice.endpoints...)
		}
	}
	// Slices of one Service may overlap while the operator moves endpoints
	// between them; answer each endpoint once, in a stable order.
	rec.endpoints = sortEndpoints(rec.endpoints)
	return rec
}

// sortEndpoints orders endpoints by address then host and drops repeats.
func sortEndpoints(eps []endpointRecord) []endpointRecord {
	slices.SortFunc(eps, func(a, b endpointRecord) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return cmp.Compare(a.host, b.host)
	})
	return slices.Clip(slices.CompactFunc(eps, func(a, b endpointRecord) bool {
		return a.addr == b.addr && a.host == b.host
	}))
}

func newServiceState(svc *corev1.Service) *serviceState {
	s := &serviceState{}
	if v, ok := svc.Annotations[v1alpha1.AnnotationDNSTTL]; ok {
		if ttl, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil && ttl <= maxTTL {
			s.ttl, s.hasTTL = uint32(ttl), true
		}
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		s.kind = kindExternalName
		if name := strings.TrimSuffix(strings.ToLower(svc.Spec.ExternalName), "."); name != "" {
			s.externalName = name + "."
		}
		return s
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		s.kind = kindHeadless
	default:
		s.kind = kindClusterIP
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if addr, err := netip.ParseAddr(ip); err == nil {
				s.clusterIPs = append(s.clusterIPs, addr.Unmap())
			}
		}
	}
	var ports []portSpec
	for _, p := range svc.Spec.Ports {
		if p.Port <= 0 || p.Port > 65535 {
			continue
		}
		ports = append(ports, portSpec{name: strings.ToLower(p.Name), proto: protocolLabel(p.Protocol), port: uint16(p.Port)})
	}
	s.ports = sharePorts(ports)
	return s
}

func newSliceState(slice *discoveryv1.EndpointSlice) *sliceState {
	s := &sliceState{service: slice.Labels[discoveryv1.LabelServiceName]}
	if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
		return s
	}
	var specs []portSpec
	for _, p := range slice.Ports {
		if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
			continue
		}
		name := ""
		if p.Name != nil {
			name = strings.ToLower(*p.Name)
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		specs = append(specs, portSpec{name: name, proto: protocolLabel(proto), port: uint16(*p.Port)})
	}
	ports := sharePorts(specs)
	for _, ep := range slice.Endpoints {
		// A nil ready condition means ready (the API's "unknown" is to be
		// taken as ready), and an endpoint that is not ready gets no record.
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		// Only the first address has a meaning; kube-proxy uses only it.
		if len(ep.Addresses) == 0 {
			continue
		}
		addr, err := netip.ParseAddr(ep.Addresses[0])
		if err != nil {
			continue
		}
		addr = addr.Unmap()
		if addr.Is4() != (slice.AddressType == discoveryv1.AddressTypeIPv4) {
			continue
		}
		host := dashedAddress(addr)
		if ep.Hostname != nil && *ep.Hostname != "" {
			host = strings.ToLower(*ep.Hostname)
		}
		s.endpoints = append(s.endpoints, endpointRecord{host: host, addr: addr, ports: ports})
	}
	s.endpoints = sortEndpoints(s.endpoints)
	return s
}

func protocolLabel(p corev1.Protocol) string {
	switch p {
	case "", corev1.ProtocolTCP:
		return "tcp" // a constant, not a copy for every port
	case corev1.ProtocolUDP:
		return "udp"
	case corev1.ProtocolSCTP:
		return "sctp"
	}
	return strings.ToLower(string(p))
}

// dashedAddress is the system-assigned hostname of an endpoint without one:
// its address with dots or colons replaced by dashes (10-0-0-1, fd00--1),
// and a 0 after a trailing dash, as a label may not end in one (fd00--0 for
// fd00::).
func dashedAddress(addr netip.Addr) string {
	if addr.Is4() {
		return strings.ReplaceAll(addr.String(), ".", "-")
	}
	host := strings.ReplaceAll(addr.String(), ":", "-")
	if strings.HasSuffix(host, "-") {
		host += "0"
	}
	return host
}
