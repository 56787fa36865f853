package endpoints

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

// Hinted is the intent's endpoints with the topology hints of its
// trafficDistribution, and why the hints are withheld when they are.
type Hinted struct {
	Endpoints []Endpoint
	// Withheld says why no endpoint carries a hint although the intent
	// asks for a traffic distribution; "" when the hints are given or none
	// is asked for.
	Withheld string
}

// Hints gives eps the hints a trafficDistribution asks for, as the
// EndpointSlice controller writes them for a Service's trafficDistribution:
// each ready endpoint is hinted for its own zone and, with PreferSameNode,
// for its own node; an endpoint that is not ready has no hints.
//
// The controller writes these hints whatever the zones hold and leaves the
// fallback to each proxy. Hints keeps to the stricter rule the controller
// applies to topology-aware hints (service.kubernetes.io/topology-mode
// Auto) instead, so that a proxy that follows hints literally never sends
// a zone's traffic nowhere: no endpoint carries a hint while a ready one
// has no zone, or while a zone of the endpoints (ready or not) has no
// ready endpoint. Every client then spreads over all ready endpoints.
// eps is not changed.
func Hints(dist v1alpha1.TrafficDistribution, eps []Endpoint) Hinted {
	out := make([]Endpoint, len(eps))
	copy(out, eps)
	for i := range out {
		out[i].HintZone, out[i].HintNode = "", ""
	}
	if dist == "" {
		return Hinted{Endpoints: out}
	}
	if why := unsafeForHints(out); why != "" {
		return Hinted{Endpoints: out, Withheld: why}
	}
	for i := range out {
		if !out[i].Ready {
			continue
		}
		out[i].HintZone = out[i].Zone
		if dist == v1alpha1.TrafficDistributionPreferSameNode {
			out[i].HintNode = out[i].NodeName
		}
	}
	return Hinted{Endpoints: out}
}

// unsafeForHints says why hints would send some clients' traffic to too few
// endpoints or none, or "" when they would not.
func unsafeForHints(eps []Endpoint) string {
	zones := map[string]bool{} // zone: has a ready endpoint
	for _, ep := range eps {
		if !ep.Ready {
			if _, seen := zones[ep.Zone]; ep.Zone != "" && !seen {
				zones[ep.Zone] = false
			}
			continue
		}
		if ep.Zone == "" {
			addr := ep.Address.Unmap().String()
			if ep.NodeName == "" {
				return fmt.Sprintf("endpoint %s has no zone: a static backend is on no node", addr)
			}
			return fmt.Sprintf("endpoint %s has no zone: its node %s has no %s label", addr, ep.NodeName, corev1.LabelTopologyZone)
		}
		zones[ep.Zone] = true
	}
	var empty []string
	ready := false
	for zone, has := range zones {
		if has {
			ready = true
		} else {
			empty = append(empty, zone)
		}
	}
	if !ready || len(empty) == 0 {
		// With no ready endpoint there is no traffic to steer.
		return ""
	}
	sort.Strings(empty)
	if len(empty) == 1 {
		return fmt.Sprintf("zone %s has no ready endpoint", empty[0])
	}
	return fmt.Sprintf("zones %s have no ready endpoint", strings.Join(empty, ", "))
}
