package health

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

func TestSpecFor(t *testing.T) {
	port := func(p int32) *int32 { return &p }
	tests := []struct {
		name    string
		handler v1alpha1.ProbeHandler
		timing  *v1alpha1.HealthCheck
		port    int32
		want    ProbeSpec
		wantOK  bool
	}{
		{name: "no probe", port: 80},
		{
			name:    "http with defaults",
			handler: v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{}},
			port:    8080,
			want: ProbeSpec{Kind: ProbeHTTP, Port: 8080, Path: "/", Statuses: []StatusRange{{200, 399}},
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
			want: ProbeSpec{Kind: ProbeHTTP, Port: 9000, Path: "/healthz", Host: "web.example.com",
				Statuses: []StatusRange{{200, 200}, {300, 302}},
				Period:   2 * time.Second, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 4},
			wantOK: true,
		},
		{
			name:    "tcp on the default port",
			handler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{}},
			timing:  &v1alpha1.HealthCheck{UnhealthyThreshold: port(2)},
			port:    5432,
			want: ProbeSpec{Kind: ProbeTCP, Port: 5432,
				Period: 10 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2},
			wantOK: true,
		},
		{
			name:    "grpc on the default port, plaintext",
			handler: v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{}},
			port:    9000,
			want: ProbeSpec{Kind: ProbeGRPC, Port: 9000,
				Period: 10 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 3},
			wantOK: true,
		},
		{
			name:    "grpc with a port, a service and TLS",
			handler: v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{Port: port(50051), Service: "shop.Payments", TLS: v1alpha1.GRPCProbeTLSInsecureSkipVerify}},
			port:    9000,
			want: ProbeSpec{Kind: ProbeGRPC, Port: 50051, Service: "shop.Payments", TLS: true,
				Period: 10 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 3},
			wantOK: true,
		},
		{
			name:    "grpc with tls Disabled is plaintext",
			handler: v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{TLS: v1alpha1.GRPCProbeTLSDisabled}},
			port:    9000,
			want: ProbeSpec{Kind: ProbeGRPC, Port: 9000,
				Period: 10 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 3},
			wantOK: true,
		},
		{
			name:    "a period below the default timeout bounds the timeout",
			handler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{}},
			timing:  &v1alpha1.HealthCheck{Period: &metav1.Duration{Duration: 250 * time.Millisecond}},
			port:    5432,
			want: ProbeSpec{Kind: ProbeTCP, Port: 5432,
				Period: 250 * time.Millisecond, Timeout: 250 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 3},
			wantOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SpecFor(tt.handler, tt.timing, tt.port)
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SpecFor = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
			if ok && !got.Equal(got.WithDefaults()) {
				t.Error("a resolved spec changes under WithDefaults")
			}
		})
	}
}

// TestSpecEqualSeesGRPCFields: a change of the service asked about or of
// TLS is a change of the probe, which the prober must pick up.
func TestSpecEqualSeesGRPCFields(t *testing.T) {
	base := ProbeSpec{Kind: ProbeGRPC, Port: 9000}.WithDefaults()
	service, tls := base, base
	service.Service = "shop.Payments"
	tls.TLS = true
	for _, other := range []ProbeSpec{service, tls} {
		if base.Equal(other) {
			t.Errorf("%+v equals %+v", base, other)
		}
	}
}
