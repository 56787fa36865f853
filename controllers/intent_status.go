package controllers

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

// Condition types of a NetworkIntent.
const (
	ConditionReady            = "Ready"
	ConditionServiceReady     = "ServiceReady"
	ConditionEndpointsHealthy = "EndpointsHealthy"
	ConditionAddressAssigned  = "AddressAssigned"
)

// Condition reasons of a NetworkIntent. Each names something a person can
// act on; the condition's message says what to do.
const (
	ReasonReady           = "Ready"
	ReasonApplied         = "Applied"
	ReasonServiceConflict = "ServiceConflict"
	ReasonRecreating      = "Recreating"
	ReasonApplyFailed     = "ApplyFailed"
	// ReasonAddressPending is v1alpha1.AddressReasonPending, the intent's
	// AddressAssigned reason before an address is given or refused.
	ReasonAddressPending = v1alpha1.AddressReasonPending

	ReasonAllHealthy        = "AllHealthy"
	ReasonDegraded          = "Degraded"
	ReasonBelowHealthyFloor = "BelowHealthyFloor"
	ReasonNoBackends        = "NoBackends"
)

// ManagedByController is the endpointslice.kubernetes.io/managed-by value of
// the EndpointSlices netintent writes.
const ManagedByController = "netintent.networking.netintent.io"

// setCondition sets one condition of the intent for its current generation.
func setCondition(in *v1alpha1.NetworkIntent, typ string, ok bool, reason, msg string, args ...any) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	if len(args) > 0 {
		msg = fmt.Sprintf(msg, args...)
	}
	meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: in.Generation,
	})
}

// observeService copies what the API server reports of the intent's Service
// into the intent's status and sets AddressAssigned for LoadBalancer intents.
func observeService(in *v1alpha1.NetworkIntent, svc *corev1.Service) {
	st := &in.Status
	st.ServiceName = svc.Name
	st.ClusterIPs = nil
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		st.ClusterIPs = append([]string(nil), svc.Spec.ClusterIPs...)
	}
	st.NodePorts = nil
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			st.NodePorts = append(st.NodePorts, v1alpha1.NodePortStatus{Name: p.Name, NodePort: p.NodePort})
		}
	}
	st.LoadBalancer = nil
	st.Address = ""
	switch svc.Spec.Type {
	case corev1.ServiceTypeExternalName:
		st.Address = svc.Spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		observeLoadBalancer(in, svc)
	default:
		if len(st.ClusterIPs) > 0 {
			st.Address = st.ClusterIPs[0]
		}
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		meta.RemoveStatusCondition(&st.Conditions, ConditionAddressAssigned)
	}
}

func observeLoadBalancer(in *v1alpha1.NetworkIntent, svc *corev1.Service) {
	st := &in.Status
	var ingress []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			ingress = append(ingress, ing.IP)
		} else if ing.Hostname != "" {
			ingress = append(ingress, ing.Hostname)
		}
	}
	lb := &v1alpha1.LoadBalancerStatus{Ingress: ingress}
	st.LoadBalancer = lb
	assigned := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned)
	if assigned != nil && assigned.Status == metav1.ConditionTrue {
		lb.Pool = svc.Annotations[v1alpha1.AnnotationAllocatedFromPool]
	}
	if len(ingress) > 0 {
		st.Address = ingress[0]
		setCondition(in, ConditionAddressAssigned, true, v1alpha1.AddressReasonAssigned, "load-balancer address %s", strings.Join(ingress, ", "))
		return
	}
	if assigned != nil && assigned.Status == metav1.ConditionFalse {
		setCondition(in, ConditionAddressAssigned, false, assigned.Reason, "%s", assigned.Message)
		return
	}
	class := ""
	if in.Spec.LoadBalancer != nil {
		class = in.Spec.LoadBalancer.Class
	}
	if class == v1alpha1.AddressPoolClass {
		setCondition(in, ConditionAddressAssigned, false, v1alpha1.AddressReasonPending,
			"waiting for an address from an AddressPool; create an AddressPool this namespace may use")
		return
	}
	setCondition(in, ConditionAddressAssigned, false, v1alpha1.AddressReasonPending,
		"waiting for the cluster's load balancer implementation to assign an address; without one, set loadBalancer.class to %s and create an AddressPool", v1alpha1.AddressPoolClass)
}

// setReady folds the other conditions into Ready: true when every one that
// applies is true, else false with the reason and message of the first that
// is not.
func setReady(in *v1alpha1.NetworkIntent) {
	for _, typ := range []string{ConditionServiceReady, ConditionAddressAssigned, ConditionEndpointsHealthy} {
		c := meta.FindStatusCondition(in.Status.Conditions, typ)
		if c == nil || c.Status == metav1.ConditionTrue {
			continue
		}
		if typ == ConditionEndpointsHealthy && c.Reason == ReasonDegraded {
			// Healthy backends (or a healthy target) still carry the
			// traffic; the condition itself names what is out.
			continue
		}
		setCondition(in, ConditionReady, false, c.Reason, "%s", c.Message)
		return
	}
	setCondition(in, ConditionReady, true, ReasonReady, "%s", readyMessage(in))
}

func readyMessage(in *v1alpha1.NetworkIntent) string {
	if in.Status.Address != "" {
		return fmt.Sprintf("%s reachable at %s", in.Spec.Exposure, in.Status.Address)
	}
	return fmt.Sprintf("Service %s is in place", in.Status.ServiceName)
}
