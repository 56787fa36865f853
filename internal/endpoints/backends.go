package endpoints

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/intent"
)

// Candidate is a backend before its health is judged.
type Candidate struct {
	Endpoint
	// PodReady is the pod's Ready condition; true for a static backend.
	PodReady bool
	// Pod is the backing pod's name; empty for a static backend.
	Pod string
	// BackendHealthy says the operator's checks have passed on the pod: its
	// condition networking.netintent.io/backend-healthy is True with reason
	// ProbePassed.
	BackendHealthy bool
}

// FromPods makes candidates of the pods that back the intent: one for each
// of a pod's IPs. Pods without an IP or that have finished are left out;
// pods that lack a named target port are left out and reported.
func FromPods(in *v1alpha1.NetworkIntent, pods []corev1.Pod, zones map[string]string) ([]Candidate, []v1alpha1.UnhealthyEndpoint) {
	var out []Candidate
	var excluded []v1alpha1.UnhealthyEndpoint
	for i := range pods {
		pod := &pods[i]
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || len(pod.Status.PodIPs) == 0 {
			continue
		}
		ports, missing := podPorts(in.Spec.Ports, pod)
		if missing != "" {
			excluded = append(excluded, v1alpha1.UnhealthyEndpoint{
				Address: pod.Status.PodIPs[0].IP, Pod: pod.Name, Reason: v1alpha1.EndpointReasonNoSuchPort,
				Message: fmt.Sprintf("pod has no container port named %q; add it to the pod or use a port number as targetPort", missing),
			})
			continue
		}
		hostname := ""
		if pod.Spec.Hostname != "" && pod.Spec.Subdomain == in.Name {
			hostname = pod.Spec.Hostname
		}
		for _, ip := range pod.Status.PodIPs {
			addr, err := netip.ParseAddr(ip.IP)
			if err != nil {
				continue
			}
			out = append(out, Candidate{
				Endpoint: Endpoint{
					Address:     addr,
					Ports:       ports,
					Terminating: !pod.DeletionTimestamp.IsZero(),
					Hostname:    hostname,
					NodeName:    pod.Spec.NodeName,
					Zone:        zones[pod.Spec.NodeName],
					TargetRef:   &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
				},
				PodReady:       podReady(pod),
				Pod:            pod.Name,
				BackendHealthy: backendHealthy(pod),
			})
		}
	}
	return out, excluded
}

// FromBackends makes candidates of the intent's static backends. A static
// backend has no container ports, so a named targetPort cannot be resolved
// on it unless the backend gives its own port.
func FromBackends(in *v1alpha1.NetworkIntent) ([]Candidate, []v1alpha1.UnhealthyEndpoint) {
	var out []Candidate
	var excluded []v1alpha1.UnhealthyEndpoint
	for _, b := range in.Spec.Backends {
		addr, err := netip.ParseAddr(b.Address)
		if err != nil {
			continue
		}
		var ports []Port
		missing := ""
		for _, p := range in.Spec.Ports {
			n := int32(0)
			switch tp := intent.TargetPort(p); {
			case b.Port != nil:
				n = *b.Port
			case tp.Type == intstr.Int:
				n = tp.IntVal
			default:
				missing = tp.StrVal
			}
			ports = append(ports, Port{Name: p.Name, Protocol: intent.Protocol(p), Number: n, AppProtocol: p.AppProtocol})
		}
		if missing != "" {
			excluded = append(excluded, v1alpha1.UnhealthyEndpoint{
				Address: b.Address, Reason: v1alpha1.EndpointReasonNoSuchPort,
				Message: fmt.Sprintf("a static backend has no port named %q; give the backend a port or use a port number as targetPort", missing),
			})
			continue
		}
		out = append(out, Candidate{Endpoint: Endpoint{Address: addr, Ports: ports}, PodReady: true})
	}
	return out, excluded
}

// ServedFamilies keeps the candidates whose address family is one of the
// Service's IP families (none given: every family, for a Service not seen
// yet), as the EndpointSlice controller publishes only those. A pod's
// address of another family is left out quietly, as the other address of a
// dual-stack pod behind a single-stack Service is; a static backend's is
// left out and reported.
func ServedFamilies(cands []Candidate, families []corev1.IPFamily) ([]Candidate, []v1alpha1.UnhealthyEndpoint) {
	if len(families) == 0 {
		return cands, nil
	}
	var kept []Candidate
	var excluded []v1alpha1.UnhealthyEndpoint
	for _, c := range cands {
		fam := FamilyOf(c.Address)
		if slices.Contains(families, fam) {
			kept = append(kept, c)
			continue
		}
		if c.Pod == "" {
			excluded = append(excluded, v1alpha1.UnhealthyEndpoint{
				Address: c.Address.String(), Reason: v1alpha1.EndpointReasonFamilyNotServed,
				Message: fmt.Sprintf("the Service has no %s family (it has %v); list a backend of its family", fam, families),
			})
		}
	}
	return kept, excluded
}

// FamilyOf is the IP family of addr; an IPv4-mapped IPv6 address is IPv4.
func FamilyOf(addr netip.Addr) corev1.IPFamily {
	if addr.Unmap().Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

func podPorts(ports []v1alpha1.IntentPort, pod *corev1.Pod) ([]Port, string) {
	out := make([]Port, 0, len(ports))
	for _, p := range ports {
		tp := intent.TargetPort(p)
		n := tp.IntVal
		if tp.Type == intstr.String {
			n = containerPort(pod, tp.StrVal, intent.Protocol(p))
			if n == 0 {
				return nil, tp.StrVal
			}
		}
		out = append(out, Port{Name: p.Name, Protocol: intent.Protocol(p), Number: n, AppProtocol: p.AppProtocol})
	}
	return out, ""
}

func containerPort(pod *corev1.Pod, name string, proto corev1.Protocol) int32 {
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			cpProto := cp.Protocol
			if cpProto == "" {
				cpProto = corev1.ProtocolTCP
			}
			if cp.Name == name && cpProto == proto {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

func podReady(pod *corev1.Pod) bool {
	return podCondition(pod, corev1.PodReady) == corev1.ConditionTrue
}

func backendHealthy(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1alpha1.PodConditionBackendHealthy {
			return c.Status == corev1.ConditionTrue && c.Reason == v1alpha1.BackendHealthyProbePassed
		}
	}
	return false
}

// podCondition is the status of the pod's condition of type typ, "" when
// it has none.
func podCondition(pod *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range pod.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// ProbeResult is the active probe's verdict on one candidate.
type ProbeResult struct {
	Healthy bool
	// Err is the short class of the last failure (ConnectionRefused,
	// Timeout, "HTTPStatus 503", ...), as status shows it.
	Err string
	// Forbidden says why the prober refuses the address; empty when it
	// does not.
	Forbidden string
	// Changed is when the probe decided the health it reports: the time
	// of the probe that flipped it; zero if it never flipped.
	Changed time.Time
}

// Verdict is the judged endpoints of an intent.
type Verdict struct {
	// Endpoints are to be published.
	Endpoints []Endpoint
	// Total counts the backends that are not terminating; Healthy those of
	// them that pass every check.
	Total, Healthy int
	// Unhealthy names the backends out of traffic by their own health,
	// sorted by address.
	Unhealthy []v1alpha1.UnhealthyEndpoint
	// BelowFloor is set when fewer than minHealthyPercent of the backends
	// of a family were healthy, so every pod-ready backend of that family
	// is published as ready. BelowFloorFamilies names those families.
	BelowFloor         bool
	BelowFloorFamilies []corev1.IPFamily
	// Families counts, per IP family, the backends that are not
	// terminating and the healthy ones: the floor holds per family, as
	// each family is its own set of slices and its own traffic.
	Families map[corev1.IPFamily]FamilyCount
}

// FamilyCount counts the backends of one IP family.
type FamilyCount struct {
	Total, Healthy int
}

// Judge decides which candidates take traffic. A candidate is healthy when
// its pod is ready (unless ignoreReadiness), its probe passes (probe nil:
// no active probe) and it is not terminating. A terminating candidate is
// never ready, but serving while it would otherwise be healthy. When fewer
// than minPercent of the candidates are healthy, the floor publishes every
// pod-ready one as ready rather than prune to almost nothing. Each
// address is judged on its own, and the floor counts each IP family apart:
// a dual-stack pod whose IPv6 address fails its probe keeps its IPv4
// address in traffic, and a family whose backends mostly fail is held up
// by the floor whatever the other family does.
func Judge(cands []Candidate, probe func(Candidate) *ProbeResult, ignoreReadiness bool, minPercent int32) Verdict {
	v := Verdict{Families: map[corev1.IPFamily]FamilyCount{}}
	healthy := make([]bool, len(cands))
	changed := make([]time.Time, len(cands))
	for i, c := range cands {
		ready := c.PodReady || ignoreReadiness
		pr := probe(c)
		if pr != nil && ready {
			// The probe decides this endpoint's state.
			changed[i] = pr.Changed
		}
		ok := ready && (pr == nil || pr.Healthy)
		healthy[i] = ok
		if c.Terminating {
			continue
		}
		fam := FamilyOf(c.Address)
		fc := v.Families[fam]
		fc.Total++
		v.Total++
		if ok {
			fc.Healthy++
			v.Families[fam] = fc
			v.Healthy++
			continue
		}
		v.Families[fam] = fc
		u := v1alpha1.UnhealthyEndpoint{Address: c.Address.String(), Pod: c.Pod, Family: fam, Reason: v1alpha1.EndpointReasonNotReady, Message: "pod is not Ready"}
		switch {
		case ready && pr.Forbidden != "":
			u.Reason, u.Message = v1alpha1.EndpointReasonForbiddenTarget, "the prober never dials this address: it is "+pr.Forbidden
		case ready:
			u.Reason, u.Message = v1alpha1.EndpointReasonProbeFailed, pr.Err
		}
		v.Unhealthy = append(v.Unhealthy, u)
	}
	for _, fam := range []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol} {
		fc := v.Families[fam]
		if minPercent > 0 && fc.Total > 0 && fc.Healthy*100 < int(minPercent)*fc.Total {
			v.BelowFloor = true
			v.BelowFloorFamilies = append(v.BelowFloorFamilies, fam)
		}
	}
	for i, c := range cands {
		ep := c.Endpoint
		inTraffic := healthy[i] || (slices.Contains(v.BelowFloorFamilies, FamilyOf(c.Address)) && c.PodReady)
		ep.Ready = inTraffic && !c.Terminating
		ep.Serving = inTraffic
		ep.Changed = changed[i]
		v.Endpoints = append(v.Endpoints, ep)
	}
	sort.Slice(v.Unhealthy, func(i, j int) bool { return v.Unhealthy[i].Address < v.Unhealthy[j].Address })
	return v
}
