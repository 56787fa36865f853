// Package endpoints computes, without any API client, the EndpointSlices of
// an intent's Service from its backends: one address family and one port
// mapping a slice, at most MaxPerSlice endpoints a slice, stable names, and
// endpoints kept in the slice they are already in so that a change to one
// endpoint rewrites one slice.
package endpoints

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// MaxPerSlice is the most endpoints written to one slice, as the built-in
// endpointslice controller does.
const MaxPerSlice = 100

// Port is one Service port resolved to a number on a backend.
type Port struct {
	Name        string
	Protocol    corev1.Protocol
	Number      int32
	AppProtocol *string
}

// Endpoint is one backend address as it is to be published.
type Endpoint struct {
	Address     netip.Addr
	Ports       []Port // in the intent's port order
	Ready       bool
	Serving     bool
	Terminating bool
	Hostname    string
	NodeName    string
	Zone        string
	// HintZone and HintNode are the zone and node whose clients the
	// endpoint is hinted for ("" for none): see Hints.
	HintZone  string
	HintNode  string
	TargetRef *corev1.ObjectReference
	// Changed is when the state to publish was decided, if known: the
	// time of the probe that flipped the endpoint's health. It is not
	// published itself; it dates the slices' trigger time.
	Changed time.Time
}

// Target is what the slices are for: the Service, its owner and its labels.
type Target struct {
	Namespace   string
	ServiceName string
	ManagedBy   string
	Owner       metav1.OwnerReference
	Labels      map[string]string
	// Headless labels the slices service.kubernetes.io/headless, as the
	// EndpointSlice controller does for a headless Service; without it the
	// label is taken off slices that have it.
	Headless bool
	// Now is when the change being published was seen: the trigger time
	// of a slice written for a change no probe dated.
	Now time.Time
	// Families are the address types of the Service's IP families. Each
	// one without an endpoint gets a placeholder slice (no endpoints, no
	// ports), as the EndpointSlice controller writes, so that consumers
	// see the family exists and has nothing to serve.
	Families []discoveryv1.AddressType
}

// Plan is the writes that bring the existing slices to the desired ones.
type Plan struct {
	Create []*discoveryv1.EndpointSlice
	Update []*discoveryv1.EndpointSlice
	Delete []*discoveryv1.EndpointSlice
	// Unchanged counts slices that need no write.
	Unchanged int
}

// group is the slices of one address family and one port mapping.
type group struct {
	key         string
	addressType discoveryv1.AddressType
	ports       []discoveryv1.EndpointPort
}

// Reconcile plans the writes that make existing (the Service's slices that
// this operator manages) publish eps. Endpoints stay in the slice they are
// in; new ones fill slices with room, in name order, then new slices.
func Reconcile(t Target, eps []Endpoint, existing []discoveryv1.EndpointSlice) Plan {
	desired := map[string]map[netip.Addr]Endpoint{}
	groups := map[string]group{}
	for _, ep := range eps {
		g := groupOf(ep)
		if desired[g.key] == nil {
			desired[g.key] = map[netip.Addr]Endpoint{}
			groups[g.key] = g
		}
		desired[g.key][ep.Address] = ep
	}

	for _, at := range t.Families {
		has := false
		for _, g := range groups {
			has = has || g.addressType == at
		}
		if !has {
			g := group{key: groupKey(at, nil), addressType: at}
			groups[g.key] = g
			desired[g.key] = map[netip.Addr]Endpoint{}
		}
	}

	var plan Plan
	byGroup := map[string][]*discoveryv1.EndpointSlice{}
	for i := range existing {
		s := &existing[i]
		key := groupKey(s.AddressType, s.Ports)
		if desired[key] == nil {
			plan.Delete = append(plan.Delete, s)
			continue
		}
		byGroup[key] = append(byGroup[key], s)
	}

	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		planGroup(&plan, t, groups[key], desired[key], byGroup[key])
	}
	return plan
}

func planGroup(plan *Plan, t Target, g group, want map[netip.Addr]Endpoint, have []*discoveryv1.EndpointSlice) {
	sort.Slice(have, func(i, j int) bool { return have[i].Name < have[j].Name })
	if len(want) == 0 {
		planPlaceholder(plan, t, g, have)
		return
	}
	placed := map[netip.Addr]bool{}
	content := make([][]discoveryv1.Endpoint, len(have))
	for i, s := range have {
		for _, old := range s.Endpoints {
			if len(old.Addresses) == 0 {
				continue
			}
			addr, err := netip.ParseAddr(old.Addresses[0])
			if err != nil || placed[addr] || len(content[i]) >= MaxPerSlice {
				continue
			}
			if ep, ok := want[addr]; ok {
				content[i] = append(content[i], toAPI(ep))
				placed[addr] = true
			}
		}
	}
	var rest []Endpoint
	for addr, ep := range want {
		if !placed[addr] {
			rest = append(rest, ep)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Address.Less(rest[j].Address) })
	for i := range have {
		for len(rest) > 0 && len(content[i]) < MaxPerSlice {
			content[i] = append(content[i], toAPI(rest[0]))
			rest = rest[1:]
		}
	}
	used := map[string]bool{}
	for i, s := range have {
		used[s.Name] = true
		if len(content[i]) == 0 {
			plan.Delete = append(plan.Delete, s)
			continue
		}
		next := newSlice(t, g, s.Name, content[i])
		if sameSlice(s, next) {
			plan.Unchanged++
			continue
		}
		setTriggerTime(next, triggerTime(t, s, next, want))
		// Keep what others wrote on the slice's metadata.
		upd := s.DeepCopy()
		for k, v := range next.Labels {
			if upd.Labels == nil {
				upd.Labels = map[string]string{}
			}
			upd.Labels[k] = v
		}
		if !t.Headless {
			delete(upd.Labels, corev1.IsHeadlessService)
		}
		upd.OwnerReferences, upd.Endpoints, upd.Ports = next.OwnerReferences, next.Endpoints, next.Ports
		setTriggerTime(upd, next.Annotations[corev1.EndpointsLastChangeTriggerTime])
		plan.Update = append(plan.Update, upd)
	}
	for n := 0; len(rest) > 0; n++ {
		name := sliceName(t.ServiceName, g, n)
		if used[name] {
			continue
		}
		size := min(len(rest), MaxPerSlice)
		var chunk []discoveryv1.Endpoint
		for _, ep := range rest[:size] {
			chunk = append(chunk, toAPI(ep))
		}
		rest = rest[size:]
		s := newSlice(t, g, name, chunk)
		setTriggerTime(s, triggerTime(t, nil, s, want))
		plan.Create = append(plan.Create, s)
	}
}

// planPlaceholder keeps one placeholder slice of the family g: the first
// of have, or a new one.
func planPlaceholder(plan *Plan, t Target, g group, have []*discoveryv1.EndpointSlice) {
	if len(have) == 0 {
		plan.Create = append(plan.Create, newSlice(t, g, sliceName(t.ServiceName, g, 0), nil))
		return
	}
	plan.Delete = append(plan.Delete, have[1:]...)
	next := newSlice(t, g, have[0].Name, nil)
	if sameSlice(have[0], next) {
		plan.Unchanged++
		return
	}
	upd := have[0].DeepCopy()
	for k, v := range next.Labels {
		if upd.Labels == nil {
			upd.Labels = map[string]string{}
		}
		upd.Labels[k] = v
	}
	if !t.Headless {
		delete(upd.Labels, corev1.IsHeadlessService)
	}
	upd.OwnerReferences, upd.Endpoints, upd.Ports = next.OwnerReferences, nil, nil
	plan.Update = append(plan.Update, upd)
}

func groupOf(ep Endpoint) group {
	at := discoveryv1.AddressTypeIPv4
	if ep.Address.Is6() && !ep.Address.Is4In6() {
		at = discoveryv1.AddressTypeIPv6
	}
	ports := make([]discoveryv1.EndpointPort, 0, len(ep.Ports))
	for _, p := range ep.Ports {
		ports = append(ports, discoveryv1.EndpointPort{
			Name:        ptr.To(p.Name),
			Protocol:    ptr.To(p.Protocol),
			Port:        ptr.To(p.Number),
			AppProtocol: p.AppProtocol,
		})
	}
	return group{key: groupKey(at, ports), addressType: at, ports: ports}
}

// groupKey identifies a family and port mapping, so that slices written
// before a restart are recognised.
func groupKey(at discoveryv1.AddressType, ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	b.WriteString(string(at))
	for _, p := range ports {
		fmt.Fprintf(&b, "|%s/%s=%d/%s", ptr.Deref(p.Name, ""), ptr.Deref(p.Protocol, ""), ptr.Deref(p.Port, 0), ptr.Deref(p.AppProtocol, ""))
	}
	return b.String()
}

// sliceName is stable for a Service, family, port mapping and index.
func sliceName(svc string, g group, n int) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(g.key))
	fam := "v4"
	if g.addressType == discoveryv1.AddressTypeIPv6 {
		fam = "v6"
	}
	return fmt.Sprintf("%s-%s-%08x-%d", svc, fam, h.Sum32(), n)
}

func toAPI(ep Endpoint) discoveryv1.Endpoint {
	out := discoveryv1.Endpoint{
		Addresses: []string{ep.Address.Unmap().String()},
		Conditions: discoveryv1.EndpointConditions{
			Ready:       ptr.To(ep.Ready),
			Serving:     ptr.To(ep.Serving),
			Terminating: ptr.To(ep.Terminating),
		},
		TargetRef: ep.TargetRef,
	}
	if ep.Hostname != "" {
		out.Hostname = ptr.To(ep.Hostname)
	}
	if ep.NodeName != "" {
		out.NodeName = ptr.To(ep.NodeName)
	}
	if ep.Zone != "" {
		out.Zone = ptr.To(ep.Zone)
	}
	if ep.HintZone != "" || ep.HintNode != "" {
		out.Hints = &discoveryv1.EndpointHints{}
		if ep.HintZone != "" {
			out.Hints.ForZones = []discoveryv1.ForZone{{Name: ep.HintZone}}
		}
		if ep.HintNode != "" {
			out.Hints.ForNodes = []discoveryv1.ForNode{{Name: ep.HintNode}}
		}
	}
	return out
}

func newSlice(t Target, g group, name string, eps []discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	labels := map[string]string{}
	for k, v := range t.Labels {
		labels[k] = v
	}
	labels[discoveryv1.LabelServiceName] = t.ServiceName
	labels[discoveryv1.LabelManagedBy] = t.ManagedBy
	if t.Headless {
		labels[corev1.IsHeadlessService] = ""
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       t.Namespace,
			Labels:          labels,
			OwnerReferences: []metav1.OwnerReference{t.Owner},
		},
		AddressType: g.addressType,
		Endpoints:   eps,
		Ports:       g.ports,
	}
}

// sameSlice reports whether have already holds what next would write.
func sameSlice(have, next *discoveryv1.EndpointSlice) bool {
	for k, v := range next.Labels {
		if have.Labels[k] != v {
			return false
		}
	}
	_, haveHeadless := have.Labels[corev1.IsHeadlessService]
	_, nextHeadless := next.Labels[corev1.IsHeadlessService]
	return haveHeadless == nextHeadless && equality.Semantic.DeepEqual(have.OwnerReferences, next.OwnerReferences) &&
		equality.Semantic.DeepEqual(have.Endpoints, next.Endpoints) &&
		equality.Semantic.DeepEqual(have.Ports, next.Ports)
}

// triggerTime dates a slice write for endpoints.kubernetes.io/last-change-trigger-time,
// so that consumers (kube-proxy's network_programming_duration_seconds)
// measure from the change, not from the write: the earliest time at which
// an endpoint of next took the state it is published with, where a probe
// dated it after the slice was last written (have's trigger time); t.Now
// for every other change.
func triggerTime(t Target, have, next *discoveryv1.EndpointSlice, want map[netip.Addr]Endpoint) string {
	var since time.Time
	before := map[string]discoveryv1.EndpointConditions{}
	if have != nil {
		since, _ = time.Parse(time.RFC3339Nano, have.Annotations[corev1.EndpointsLastChangeTriggerTime])
		for _, ep := range have.Endpoints {
			if len(ep.Addresses) > 0 {
				before[ep.Addresses[0]] = ep.Conditions
			}
		}
	}
	earliest := t.Now
	for _, ep := range next.Endpoints {
		old, ok := before[ep.Addresses[0]]
		if ok && equality.Semantic.DeepEqual(old, ep.Conditions) {
			continue
		}
		addr, err := netip.ParseAddr(ep.Addresses[0])
		if err != nil {
			continue
		}
		if changed := want[addr].Changed; changed.After(since) && (earliest.IsZero() || changed.Before(earliest)) {
			earliest = changed
		}
	}
	if earliest.IsZero() {
		return ""
	}
	return earliest.UTC().Format(time.RFC3339Nano)
}

// setTriggerTime sets the slice's trigger time annotation, or removes it
// when there is none to give.
func setTriggerTime(s *discoveryv1.EndpointSlice, at string) {
	if at == "" {
		delete(s.Annotations, corev1.EndpointsLastChangeTriggerTime)
		return
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[corev1.EndpointsLastChangeTriggerTime] = at
}
