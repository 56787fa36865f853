package health

import (
	"github.com/netintent/netintent/api/v1alpha1"
)

// SpecFor resolves an API probe into a ProbeSpec: handler says what to probe
// (http, tcp or grpc), timing gives period, timeout and thresholds (nil: the
// defaults, as for an ExternalName target), and port is the port to probe
// when the handler names none (the endpoint's first target port; 80 for an
// ExternalName HTTP target). ok is false when handler holds no probe.
func SpecFor(handler v1alpha1.ProbeHandler, timing *v1alpha1.HealthCheck, port int32) (spec ProbeSpec, ok bool) {
	switch {
	case handler.HTTP != nil:
		h := handler.HTTP
		spec = ProbeSpec{Kind: ProbeHTTP, Port: int(port), Path: h.Path, Host: h.Host}
		if h.Port != nil {
			spec.Port = int(*h.Port)
		}
		for _, r := range h.ExpectedStatuses {
			spec.Statuses = append(spec.Statuses, StatusRange{Min: int(r.Min), Max: int(r.Max)})
		}
	case handler.TCP != nil:
		spec = ProbeSpec{Kind: ProbeTCP, Port: int(port)}
		if handler.TCP.Port != nil {
			spec.Port = int(*handler.TCP.Port)
		}
	case handler.GRPC != nil:
		g := handler.GRPC
		spec = ProbeSpec{Kind: ProbeGRPC, Port: int(port), Service: g.Service, TLS: g.TLS == v1alpha1.GRPCProbeTLSInsecureSkipVerify}
		if g.Port != nil {
			spec.Port = int(*g.Port)
		}
	default:
		return ProbeSpec{}, false
	}
	if timing != nil {
		if timing.Period != nil {
			spec.Period = timing.Period.Duration
		}
		if timing.Timeout != nil {
			spec.Timeout = timing.Timeout.Duration
		}
		if timing.HealthyThreshold != nil {
			spec.HealthyThreshold = int(*timing.HealthyThreshold)
		}
		if timing.UnhealthyThreshold != nil {
			spec.UnhealthyThreshold = int(*timing.UnhealthyThreshold)
		}
	}
	return spec.WithDefaults(), true
}
