package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// Probe settings of the end-to-end probing test.
const (
	probePeriod        = time.Second
	probeTimeout       = 500 * time.Millisecond
	unhealthyThreshold = 2
)

// notReadyDeadline is the longest a stopped backend may stay ready:
// period x unhealthyThreshold + timeout + 1 s for the reconcile and the
// write.
var notReadyDeadline = probePeriod*unhealthyThreshold + probeTimeout + time.Second

// TestProbingOnTestHosts runs real HTTP backends in network namespaces with
// non-loopback addresses, backs pods with them, and stops and starts them.
func TestProbingOnTestHosts(t *testing.T) {
	ctx := context.Background()
	tn := testnet.New(t, 4)
	ns := testEnv.Namespace(t)
	in := testenv.Intent(ns, "probed").SelectApp("probed").HTTPPort(testnet.HTTPPort).
		HTTPProbe(probePeriod, probeTimeout, unhealthyThreshold).HealthyThreshold(1).MinHealthyPercent(50).Build()
	for i, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatalf("starting test host %d: %v", i, err)
		}
		makePod(t, ns, "probed", fmt.Sprintf("backend-%d", i), h.IP.String(), 0, true)
	}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	readyOf := func(eps map[string]endpointState, h *testnet.Host) bool { return eps[h.IP.String()].ready }
	allReady := func(eps map[string]endpointState) error {
		for _, h := range tn.Hosts {
			if !readyOf(eps, h) {
				return fmt.Errorf("%s not ready: %v", h.IP, eps)
			}
		}
		return nil
	}
	waitPublished(t, 20*time.Second, ns, "probed", allReady)

	// One backend stops: it leaves traffic within the deadline, and the
	// others stay.
	h0 := tn.Hosts[0]
	if err := h0.Stop(); err != nil {
		t.Fatal(err)
	}
	waitPublished(t, notReadyDeadline, ns, "probed", func(eps map[string]endpointState) error {
		if readyOf(eps, h0) || eps[h0.IP.String()].serving {
			return fmt.Errorf("stopped backend %s still in traffic", h0.IP)
		}
		for _, h := range tn.Hosts[1:] {
			if !readyOf(eps, h) {
				return fmt.Errorf("%s left traffic too", h.IP)
			}
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "probed")
		if err != nil {
			return err
		}
		if got.Status.Endpoints == nil || len(got.Status.Endpoints.Unhealthy) != 1 || got.Status.Endpoints.Unhealthy[0].Reason != "ProbeFailed" || got.Status.Endpoints.Unhealthy[0].Message != health.FailureConnectionRefused {
			return fmt.Errorf("endpoints status %+v", got.Status.Endpoints)
		}
		return testenv.IntentCondition(got, v1alpha1.IntentConditionEndpointsHealthy, metav1.ConditionFalse, v1alpha1.IntentReasonDegraded)
	})
	// It starts again: it returns.
	if err := h0.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPublished(t, notReadyDeadline, ns, "probed", allReady)

	// Every backend stops: the floor keeps them all in traffic and says so.
	for _, h := range tn.Hosts {
		if err := h.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 3*notReadyDeadline, func() error {
		got, err := getIntent(ctx, ns, "probed")
		if err != nil {
			return err
		}
		if e := got.Status.Endpoints; e == nil || e.Healthy != 0 {
			return fmt.Errorf("endpoints status %+v", got.Status.Endpoints)
		}
		return testenv.IntentCondition(got, v1alpha1.IntentConditionEndpointsHealthy, metav1.ConditionFalse, v1alpha1.IntentReasonBelowHealthyFloor)
	})
	waitPublished(t, time.Second, ns, "probed", allReady)
	for _, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitForCondition(t, k8sClient, client.ObjectKey{Namespace: ns, Name: "probed"}, v1alpha1.IntentConditionEndpointsHealthy, metav1.ConditionTrue, v1alpha1.IntentReasonAllHealthy, 3*notReadyDeadline)

	t.Run("latency", func(t *testing.T) { measureFailureToNotReady(t, ns, tn) })
}

// measureFailureToNotReady stops backends 20 times, two at a time (half of
// them, so the 50% floor never opens), each at a random point of its probe
// cycle, and logs how long each took to be published ready=false.
func measureFailureToNotReady(t *testing.T, ns string, tn *testnet.Net) {
	ctx := context.Background()
	var mu sync.Mutex
	var took []time.Duration
	for round := 0; len(took) < 20; round++ {
		pair := []*testnet.Host{tn.Hosts[round%2*2], tn.Hosts[round%2*2+1]}
		var wg sync.WaitGroup
		for _, h := range pair {
			wg.Go(func() {
				// A random phase of the probe cycle, not a wait for anything.
				time.Sleep(rand.N(probePeriod))
				if err := h.Stop(); err != nil {
					t.Error(err)
					return
				}
				stopped := time.Now()
				deadline := stopped.Add(notReadyDeadline + 2*time.Second)
				for time.Now().Before(deadline) {
					eps, _, err := published(ctx, ns, "probed")
					if err == nil && !eps[h.IP.String()].ready {
						mu.Lock()
						took = append(took, time.Since(stopped))
						mu.Unlock()
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				t.Errorf("%s still ready %s after it stopped", h.IP, notReadyDeadline+2*time.Second)
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for _, h := range pair {
			if err := h.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		waitPublished(t, 2*notReadyDeadline, ns, "probed", func(eps map[string]endpointState) error {
			for _, h := range tn.Hosts {
				if !eps[h.IP.String()].ready {
					return fmt.Errorf("%s not back", h.IP)
				}
			}
			return nil
		})
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("failure-to-not-ready over %d flips (period %s, timeout %s, unhealthyThreshold %d, HTTP probe): min %s p50 %s p90 %s worst %s",
		len(took), probePeriod, probeTimeout, unhealthyThreshold,
		took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond),
		took[len(took)*9/10].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}
