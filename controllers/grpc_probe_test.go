package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// TestGRPCProbingOnTestHosts backs an intent with a pod and a static
// backend on test hosts that serve the standard gRPC health service, probes
// them with healthCheck.grpc, and switches each host's health to
// NOT_SERVING and back to SERVING: the backend leaves traffic, is named
// with the class GRPCNotServing, and returns.
func TestGRPCProbingOnTestHosts(t *testing.T) {
	ctx := context.Background()
	tn := testnet.New(t, 2)
	ns := testEnv.Namespace(t)
	for i, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatalf("starting test host %d: %v", i, err)
		}
	}
	pod, static := tn.Hosts[0], tn.Hosts[1]
	makePod(t, ns, "grpc", "backend-0", pod.IP.String(), 0, true)
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grpc"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "grpc"}},
			Backends: []v1alpha1.Backend{{Address: static.IP.String()}},
			// The probe's port is the endpoints' target port.
			Ports: []v1alpha1.IntentPort{{Name: "grpc", Port: 50051, TargetPort: ptr.To(intstr.FromInt32(testnet.GRPCPort)), AppProtocol: ptr.To("kubernetes.io/h2c")}},
			HealthCheck: &v1alpha1.HealthCheck{
				ProbeHandler:       v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{Service: testnet.GRPCService}},
				Period:             &metav1.Duration{Duration: probePeriod},
				Timeout:            &metav1.Duration{Duration: probeTimeout},
				UnhealthyThreshold: ptr.To[int32](unhealthyThreshold),
				HealthyThreshold:   ptr.To[int32](1),
			},
		},
	}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	allReady := func(eps map[string]endpointState) error {
		for _, h := range tn.Hosts {
			if !eps[h.IP.String()].ready {
				return fmt.Errorf("%s not ready: %v", h.IP, eps)
			}
		}
		return nil
	}
	waitPublished(t, 20*time.Second, ns, "grpc", allReady)

	for _, h := range []*testnet.Host{pod, static} {
		// The host answers NOT_SERVING while it still accepts
		// connections: it leaves traffic, and the other stays.
		if err := h.SetHealthy(false); err != nil {
			t.Fatal(err)
		}
		waitPublished(t, notReadyDeadline, ns, "grpc", func(eps map[string]endpointState) error {
			for _, o := range tn.Hosts {
				e := eps[o.IP.String()]
				if o == h && (e.ready || e.serving) {
					return fmt.Errorf("%s answers NOT_SERVING and is still in traffic", o.IP)
				}
				if o != h && !e.ready {
					return fmt.Errorf("%s left traffic too", o.IP)
				}
			}
			return nil
		})
		testenv.Eventually(t, 10*time.Second, func() error {
			got, err := getIntent(ctx, ns, "grpc")
			if err != nil {
				return err
			}
			e := got.Status.Endpoints
			if e == nil || len(e.Unhealthy) != 1 || e.Unhealthy[0].Address != h.IP.String() ||
				e.Unhealthy[0].Reason != "ProbeFailed" || e.Unhealthy[0].Message != health.FailureGRPCNotServing {
				return fmt.Errorf("endpoints status %+v, want %s named with %s", e, h.IP, health.FailureGRPCNotServing)
			}
			return nil
		})
		// SERVING again: it returns.
		if err := h.SetHealthy(true); err != nil {
			t.Fatal(err)
		}
		waitPublished(t, notReadyDeadline, ns, "grpc", allReady)
	}
}

// TestGRPCProbedExternalNameFailsOver: ExternalName targets probed with
// healthCheck's gRPC health checks: the alias leaves a target that answers
// NOT_SERVING, whose status says GRPCNotServing, and returns once it
// answers SERVING again.
func TestGRPCProbedExternalNameFailsOver(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	primary, secondary, hosts := failoverNames(t, ns)
	grpcProbe := v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{Port: ptr.To[int32](testnet.GRPCPort)}}
	in := failoverIntent(ns, primary, secondary, v1alpha1.FailbackAutomatic, ptr.To(time.Duration(0)))
	for i := range in.Spec.ExternalName.Targets {
		in.Spec.ExternalName.Targets[i].ProbeHandler = grpcProbe
	}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, aliasIs(ns, primary))

	if err := hosts[0].SetHealthy(false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, failoverDeadline, aliasIs(ns, secondary))
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "payments")
		if err != nil {
			return err
		}
		st := got.Status.ExternalName
		if st == nil || len(st.Targets) != 2 || st.Targets[0].Healthy || st.Targets[0].Message != health.FailureGRPCNotServing {
			return fmt.Errorf("status.externalName %+v, want %s unhealthy with %s", st, primary, health.FailureGRPCNotServing)
		}
		return nil
	})

	if err := hosts[0].SetHealthy(true); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, failoverDeadline, aliasIs(ns, primary))
}
