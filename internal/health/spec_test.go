package health

import (
	"testing"
)

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
