package controllers

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
)

// TestProbeSpec: an intent's probe, its timing and the endpoint's port
// make the prober's spec, defaults filled in.
func TestProbeSpec(t *testing.T) {
	port := func(p int32) *int32 { return &p }
	// byDefault is s with the default period, timeout and thresholds.
	byDefault := func(s health.ProbeSpec) health.ProbeSpec {
		s.Period, s.Timeout, s.HealthyThreshold, s.UnhealthyThreshold = 10*time.Second, 2*time.Second, 1, 3
		return s
	}
	tests := []struct {
		name    string
		handler v1alpha1.ProbeHandler
		timing  *v1alpha1.HealthCheck
		port    int32
		want    health.ProbeSpec
		wantOK  bool
	}{
		{name: "no probe", port: 80},
		{
			name:    "http with defaults",
			handler: v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{}},
			port:    8080,
			want: health.ProbeSpec{Kind: health.ProbeHTTP, Port: 8080, Path: "/", Statuses: []health.StatusRange{{Min: 200, Max: 399}},
				Period: 10 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 3},
			wantOK: true,
		},
		{
			name: "http with everything set",
			handler: v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{
				Path: "/healthz", Port: port(9000), Host: "web.example.com",
				ExpectedStatuses: []v1alpha1.StatusRange{{Min: 200}, {Min: 300, Max: 302}},
			}},
			timing: &v1alpha1.HealthCheck{
				Period: &metav1.Duration{Duration: 2 * time.Second}, Timeout: &metav1.Duration{Duration: time.Second},
				HealthyThreshold: port(2), UnhealthyThreshold: port(4),
			},
			port: 8080,
			want: health.ProbeSpec{Kind: health.ProbeHTTP, Port: 9000, Path: "/healthz", Host: "web.example.com",
				Statuses: []health.StatusRange{{Min: 200, Max: 200}, {Min: 300, Max: 302}},
				Period:   2 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 4},
			wantOK: true,
		},
		{
			name:    "tcp on the default port",
			handler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{}},
			timing:  &v1alpha1.HealthCheck{UnhealthyThreshold: port(2)},
			port:    5432,
			want: health.ProbeSpec{Kind: health.ProbeTCP, Port: 5432,
				Period: 10 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2},
			wantOK: true,
		},
		{
			name:    "grpc on the default port, plaintext",
			handler: v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{}},
			port:    9000,
			want:    byDefault(health.ProbeSpec{Kind: health.ProbeGRPC, Port: 9000}),
			wantOK:  true,
		},
		{
			name:    "grpc with a port, a service and TLS",
			handler: v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{Port: port(50051), Service: "shop.Payments", TLS: v1alpha1.GRPCProbeTLSInsecureSkipVerify}},
			port:    9000,
			want:    byDefault(health.ProbeSpec{Kind: health.ProbeGRPC, Port: 50051, Service: "shop.Payments", TLS: true}),
			wantOK:  true,
		},
		{
			name:    "grpc with tls Disabled is plaintext",
			handler: v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{TLS: v1alpha1.GRPCProbeTLSDisabled}},
			port:    9000,
			want:    byDefault(health.ProbeSpec{Kind: health.ProbeGRPC, Port: 9000}),
			wantOK:  true,
		},
		{
			name:    "a period below the default timeout bounds the timeout",
			handler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{}},
			timing:  &v1alpha1.HealthCheck{Period: &metav1.Duration{Duration: 250 * time.Millisecond}},
			port:    5432,
			want: health.ProbeSpec{Kind: health.ProbeTCP, Port: 5432,
				Period: 250 * time.Millisecond, Timeout: 250 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 3},
			wantOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := probeSpec(tt.handler, tt.timing, tt.port)
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("probeSpec = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
			if ok && !got.Equal(got.WithDefaults()) {
				t.Error("a resolved spec changes under WithDefaults")
			}
		})
	}
}

// TestFlipSourceEnqueuesTheFlippedIntent: a flip of the prober queues a
// reconcile of its intent.
func TestFlipSourceEnqueuesTheFlippedIntent(t *testing.T) {
	flips := make(chan health.Flip, 1)
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer queue.ShutDown()
	if err := flipSource(flips).Start(t.Context(), queue); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	flips <- health.Flip{Key: key, TargetID: "10.0.0.1:80"}
	// Get waits for the request; a queue shut down at the deadline ends
	// the wait if none comes.
	deadline := time.AfterFunc(10*time.Second, queue.ShutDown)
	defer deadline.Stop()
	req, shutdown := queue.Get()
	if shutdown {
		t.Fatal("no request queued within 10s")
	}
	if want := (reconcile.Request{NamespacedName: key}); req != want {
		t.Errorf("queued %v, want %v", req, want)
	}
}
