package intent

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

// SetCondition sets one condition of the intent for its current generation;
// msg is a format for args when there are any.
func SetCondition(in *v1alpha1.NetworkIntent, typ string, ok bool, reason, msg string, args ...any) {
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

// ObserveService copies what the API server reports of the intent's Service
// into the intent's status and sets AddressAssigned for LoadBalancer
// intents (removing it for others).
func ObserveService(in *v1alpha1.NetworkIntent, svc *corev1.Service) {
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
	st.IPFamilies = append([]corev1.IPFamily(nil), svc.Spec.IPFamilies...)
	st.LoadBalancer = nil
	st.Address = ""
	st.Addresses = nil
	switch svc.Spec.Type {
	case corev1.ServiceTypeExternalName:
		st.Address = svc.Spec.ExternalName
		st.IPFamilies = nil
		if st.Address != "" {
			st.Addresses = []string{st.Address}
		}
	case corev1.ServiceTypeLoadBalancer:
		observeLoadBalancer(in, svc)
	default:
		if len(st.ClusterIPs) > 0 {
			st.Address = st.ClusterIPs[0]
			st.Addresses = append([]string(nil), st.ClusterIPs...)
		}
	}
	st.AddressSummary = strings.Join(st.Addresses, ",")
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.IntentConditionAddressAssigned)
	}
}

// ClearServiceStatus removes from the intent's status what it showed of a
// Service, for an intent that has none of its own.
func ClearServiceStatus(in *v1alpha1.NetworkIntent) {
	in.Status.ServiceName = ""
	in.Status.Address = ""
	in.Status.ClusterIPs = nil
	in.Status.Addresses = nil
	in.Status.AddressSummary = ""
	in.Status.IPFamilies = nil
	in.Status.NodePorts = nil
	in.Status.LoadBalancer = nil
}

// observeLoadBalancer mirrors the Service's load-balancer ingress, the pool
// its address is from and its address condition.
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
		st.Addresses = ingress
		SetCondition(in, v1alpha1.IntentConditionAddressAssigned, true, v1alpha1.AddressReasonAssigned, "load-balancer address %s", strings.Join(ingress, ", "))
		return
	}
	if assigned != nil && assigned.Status == metav1.ConditionFalse {
		SetCondition(in, v1alpha1.IntentConditionAddressAssigned, false, assigned.Reason, "%s", assigned.Message)
		return
	}
	if LoadBalancerClass(in) == v1alpha1.AddressPoolClass {
		SetCondition(in, v1alpha1.IntentConditionAddressAssigned, false, v1alpha1.AddressReasonPending,
			"waiting for an address from an AddressPool; create an AddressPool this namespace may use")
		return
	}
	SetCondition(in, v1alpha1.IntentConditionAddressAssigned, false, v1alpha1.AddressReasonPending,
		"waiting for the cluster's load balancer implementation to assign an address; without one, set loadBalancer.class to %s and create an AddressPool", v1alpha1.AddressPoolClass)
}

// SetReady folds the other conditions into Ready: True when every one that
// applies is True, else False with the reason and message of the first that
// is not. A Degraded EndpointsHealthy does not count: the healthy backends
// (or a healthy target) still carry the traffic, and the condition itself
// names what is out.
func SetReady(in *v1alpha1.NetworkIntent) {
	for _, typ := range []string{v1alpha1.IntentConditionServiceReady, v1alpha1.IntentConditionAddressAssigned, v1alpha1.IntentConditionEndpointsHealthy} {
		c := meta.FindStatusCondition(in.Status.Conditions, typ)
		if c == nil || c.Status == metav1.ConditionTrue {
			continue
		}
		if typ == v1alpha1.IntentConditionEndpointsHealthy && c.Reason == v1alpha1.IntentReasonDegraded {
			continue
		}
		SetCondition(in, v1alpha1.IntentConditionReady, false, c.Reason, "%s", c.Message)
		return
	}
	SetCondition(in, v1alpha1.IntentConditionReady, true, v1alpha1.IntentReasonReady, "%s", readyMessage(in))
}

func readyMessage(in *v1alpha1.NetworkIntent) string {
	if in.Status.Address != "" {
		return fmt.Sprintf("%s reachable at %s", in.Spec.Exposure, in.Status.Address)
	}
	return fmt.Sprintf("Service %s is in place", in.Status.ServiceName)
}
