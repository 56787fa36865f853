package intent

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

func TestObserveService(t *testing.T) {
	const pool = "public"
	lbService := func(ingress []corev1.LoadBalancerIngress, cond *metav1.Condition, annotations map[string]string) *corev1.Service {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: annotations},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.7", ClusterIPs: []string{"10.96.0.7"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}},
			},
		}
		svc.Status.LoadBalancer.Ingress = ingress
		if cond != nil {
			svc.Status.Conditions = []metav1.Condition{*cond}
		}
		return svc
	}
	assigned := &metav1.Condition{Type: v1alpha1.ServiceConditionAddressAssigned, Status: metav1.ConditionTrue, Reason: v1alpha1.AddressReasonAssigned, Message: "address 198.51.100.1 from pool public"}
	refused := &metav1.Condition{Type: v1alpha1.ServiceConditionAddressAssigned, Status: metav1.ConditionFalse, Reason: v1alpha1.AddressReasonPoolExhausted, Message: "every IPv4 address of AddressPool public is assigned"}
	ingress := []corev1.LoadBalancerIngress{{IP: "198.51.100.1"}}

	tests := []struct {
		name    string
		class   string
		svc     *corev1.Service
		address string
		ips     []string
		nodePorts,
		lbIngress []string
		lbPool string
		// cond is the AddressAssigned status and reason, "" for none.
		cond   metav1.ConditionStatus
		reason string
		msg    string
	}{
		{
			name:    "cluster IP",
			svc:     &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.7", ClusterIPs: []string{"10.96.0.7", "fd00::7"}}},
			address: "10.96.0.7", ips: []string{"10.96.0.7", "fd00::7"},
		},
		{
			name: "headless",
			svc:  &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}}},
		},
		{
			name: "node port",
			svc: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.7", ClusterIPs: []string{"10.96.0.7"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "metrics", Port: 9090}}}},
			address: "10.96.0.7", ips: []string{"10.96.0.7"}, nodePorts: []string{"http"},
		},
		{
			name:    "external name",
			svc:     &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}},
			address: "db.example.com",
		},
		{
			name: "load balancer with an address from a pool", class: v1alpha1.AddressPoolClass,
			svc:     lbService(ingress, assigned, map[string]string{v1alpha1.AnnotationAllocatedFromPool: pool}),
			address: "198.51.100.1", ips: []string{"10.96.0.7"}, nodePorts: []string{"http"}, lbIngress: []string{"198.51.100.1"}, lbPool: pool,
			cond: metav1.ConditionTrue, reason: v1alpha1.AddressReasonAssigned, msg: "load-balancer address 198.51.100.1",
		},
		{
			name: "load balancer of another implementation, by host name",
			svc:  lbService([]corev1.LoadBalancerIngress{{Hostname: "lb.example.com"}}, nil, map[string]string{v1alpha1.AnnotationAllocatedFromPool: pool}),
			// The pool annotation counts only with the address condition.
			address: "lb.example.com", ips: []string{"10.96.0.7"}, nodePorts: []string{"http"}, lbIngress: []string{"lb.example.com"},
			cond: metav1.ConditionTrue, reason: v1alpha1.AddressReasonAssigned, msg: "load-balancer address lb.example.com",
		},
		{
			name: "load balancer refused", class: v1alpha1.AddressPoolClass,
			svc: lbService(nil, refused, nil),
			ips: []string{"10.96.0.7"}, nodePorts: []string{"http"},
			cond: metav1.ConditionFalse, reason: v1alpha1.AddressReasonPoolExhausted, msg: refused.Message,
		},
		{
			name: "load balancer waiting for a pool", class: v1alpha1.AddressPoolClass,
			svc: lbService(nil, nil, nil),
			ips: []string{"10.96.0.7"}, nodePorts: []string{"http"},
			cond: metav1.ConditionFalse, reason: v1alpha1.AddressReasonPending, msg: "waiting for an address from an AddressPool; create an AddressPool this namespace may use",
		},
		{
			name: "load balancer waiting for the cluster's implementation",
			svc:  lbService(nil, nil, nil),
			ips:  []string{"10.96.0.7"}, nodePorts: []string{"http"},
			cond: metav1.ConditionFalse, reason: v1alpha1.AddressReasonPending,
			msg: "waiting for the cluster's load balancer implementation to assign an address; without one, set loadBalancer.class to networking.netintent.io/address-pool and create an AddressPool",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 4}}
			if tt.class != "" {
				in.Spec.LoadBalancer = &v1alpha1.LoadBalancerSpec{Class: tt.class}
			}
			// Left from an earlier observation: replaced, or removed.
			in.Status.Address = "stale"
			in.Status.LoadBalancer = &v1alpha1.LoadBalancerStatus{Pool: "stale"}
			SetCondition(in, v1alpha1.IntentConditionAddressAssigned, true, v1alpha1.AddressReasonAssigned, "stale")

			ObserveService(in, tt.svc)
			st := in.Status
			var nodePorts []string
			for _, np := range st.NodePorts {
				nodePorts = append(nodePorts, np.Name)
			}
			if st.ServiceName != "web" || st.Address != tt.address || !slices.Equal(st.ClusterIPs, tt.ips) || !slices.Equal(nodePorts, tt.nodePorts) {
				t.Errorf("status = service %q address %q clusterIPs %v nodePorts %v; want address %q clusterIPs %v nodePorts %v",
					st.ServiceName, st.Address, st.ClusterIPs, nodePorts, tt.address, tt.ips, tt.nodePorts)
			}
			switch {
			case tt.svc.Spec.Type != corev1.ServiceTypeLoadBalancer && st.LoadBalancer != nil:
				t.Errorf("loadBalancer = %+v, want none", *st.LoadBalancer)
			case tt.svc.Spec.Type == corev1.ServiceTypeLoadBalancer && (st.LoadBalancer == nil || !slices.Equal(st.LoadBalancer.Ingress, tt.lbIngress) || st.LoadBalancer.Pool != tt.lbPool):
				t.Errorf("loadBalancer = %+v, want ingress %v pool %q", st.LoadBalancer, tt.lbIngress, tt.lbPool)
			}
			c := meta.FindStatusCondition(st.Conditions, v1alpha1.IntentConditionAddressAssigned)
			switch {
			case tt.cond == "" && c != nil:
				t.Errorf("AddressAssigned = %+v, want none", *c)
			case tt.cond == "":
			case c == nil:
				t.Errorf("no AddressAssigned, want %s %s", tt.cond, tt.reason)
			case c.Status != tt.cond || c.Reason != tt.reason || c.Message != tt.msg || c.ObservedGeneration != 4:
				t.Errorf("AddressAssigned = %s %s %q (generation %d), want %s %s %q (4)", c.Status, c.Reason, c.Message, c.ObservedGeneration, tt.cond, tt.reason, tt.msg)
			}
		})
	}
}

func TestSetReady(t *testing.T) {
	type cond struct {
		typ    string
		ok     bool
		reason string
	}
	tests := []struct {
		name    string
		address string
		conds   []cond
		ok      bool
		reason  string
		msg     string
	}{
		{
			name: "all true", address: "10.96.0.7",
			conds: []cond{{v1alpha1.IntentConditionServiceReady, true, v1alpha1.IntentReasonApplied}, {v1alpha1.IntentConditionEndpointsHealthy, true, v1alpha1.IntentReasonAllHealthy}},
			ok:    true, reason: v1alpha1.IntentReasonReady, msg: "ClusterIP reachable at 10.96.0.7",
		},
		{
			name:  "no address",
			conds: []cond{{v1alpha1.IntentConditionServiceReady, true, v1alpha1.IntentReasonApplied}},
			ok:    true, reason: v1alpha1.IntentReasonReady, msg: "Service web is in place",
		},
		{
			name: "degraded endpoints still ready", address: "10.96.0.7",
			conds: []cond{{v1alpha1.IntentConditionServiceReady, true, v1alpha1.IntentReasonApplied}, {v1alpha1.IntentConditionEndpointsHealthy, false, v1alpha1.IntentReasonDegraded}},
			ok:    true, reason: v1alpha1.IntentReasonReady, msg: "ClusterIP reachable at 10.96.0.7",
		},
		{
			name:   "below the floor",
			conds:  []cond{{v1alpha1.IntentConditionServiceReady, true, v1alpha1.IntentReasonApplied}, {v1alpha1.IntentConditionEndpointsHealthy, false, v1alpha1.IntentReasonBelowHealthyFloor}},
			reason: v1alpha1.IntentReasonBelowHealthyFloor, msg: "message of EndpointsHealthy",
		},
		{
			name: "the Service first",
			conds: []cond{
				{v1alpha1.IntentConditionEndpointsHealthy, false, v1alpha1.IntentReasonNoBackends},
				{v1alpha1.IntentConditionAddressAssigned, false, v1alpha1.AddressReasonNoPool},
				{v1alpha1.IntentConditionServiceReady, false, v1alpha1.IntentReasonServiceConflict},
			},
			reason: v1alpha1.IntentReasonServiceConflict, msg: "message of ServiceReady",
		},
		{
			name: "the address before the endpoints",
			conds: []cond{
				{v1alpha1.IntentConditionServiceReady, true, v1alpha1.IntentReasonApplied},
				{v1alpha1.IntentConditionEndpointsHealthy, false, v1alpha1.IntentReasonNoBackends},
				{v1alpha1.IntentConditionAddressAssigned, false, v1alpha1.AddressReasonNoPool},
			},
			reason: v1alpha1.AddressReasonNoPool, msg: "message of AddressAssigned",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 2}, Spec: v1alpha1.NetworkIntentSpec{Exposure: v1alpha1.ExposureClusterIP}}
			in.Status.ServiceName = "web"
			in.Status.Address = tt.address
			for _, c := range tt.conds {
				SetCondition(in, c.typ, c.ok, c.reason, "message of %s", c.typ)
			}
			SetReady(in)
			c := meta.FindStatusCondition(in.Status.Conditions, v1alpha1.IntentConditionReady)
			want := metav1.ConditionFalse
			if tt.ok {
				want = metav1.ConditionTrue
			}
			if c == nil || c.Status != want || c.Reason != tt.reason || c.Message != tt.msg || c.ObservedGeneration != 2 {
				t.Errorf("Ready = %+v, want %s %s %q", c, want, tt.reason, tt.msg)
			}
		})
	}
}

func TestSetConditionFormatsOnlyWithArgs(t *testing.T) {
	in := &v1alpha1.NetworkIntent{}
	SetCondition(in, v1alpha1.IntentConditionServiceReady, true, v1alpha1.IntentReasonApplied, "100% in place")
	SetCondition(in, v1alpha1.IntentConditionEndpointsHealthy, true, v1alpha1.IntentReasonAllHealthy, "all %d healthy", 3)
	for typ, msg := range map[string]string{v1alpha1.IntentConditionServiceReady: "100% in place", v1alpha1.IntentConditionEndpointsHealthy: "all 3 healthy"} {
		if c := meta.FindStatusCondition(in.Status.Conditions, typ); c == nil || c.Message != msg {
			t.Errorf("%s = %+v, want message %q", typ, c, msg)
		}
	}
}

func TestClearServiceStatus(t *testing.T) {
	in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	ObserveService(in, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.7", ClusterIPs: []string{"10.96.0.7"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}},
	}})
	in.Status.LoadBalancer = &v1alpha1.LoadBalancerStatus{Pool: "public"}
	in.Status.ObservedGeneration = 3
	ClearServiceStatus(in)
	st := in.Status
	if st.ServiceName != "" || st.Address != "" || st.ClusterIPs != nil || st.NodePorts != nil || st.LoadBalancer != nil {
		t.Errorf("status after clearing = %+v", st)
	}
	if st.ObservedGeneration != 3 {
		t.Error("clearing touched observedGeneration")
	}
}
