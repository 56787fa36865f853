package endpoints

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/netintent/netintent/api/v1alpha1"
)

// MaxUnhealthyListed bounds the unhealthy endpoints named in an intent's
// status.
const MaxUnhealthyListed = 10

// Report is what an intent's status says of a verdict: status.endpoints and
// the EndpointsHealthy condition.
type Report struct {
	Status *v1alpha1.EndpointsStatus
	// Healthy, Reason and Message are the EndpointsHealthy condition.
	Healthy         bool
	Reason, Message string
	// Ready counts the endpoints published ready.
	Ready int
}

// Summarize reports a verdict. excluded are the backends left out before
// judging (no such port, another family, ...), listed after the judged
// unhealthy ones; floor is the intent's minHealthyPercent.
func Summarize(v Verdict, excluded []v1alpha1.UnhealthyEndpoint, floor int32) Report {
	unhealthy := append(append([]v1alpha1.UnhealthyEndpoint(nil), v.Unhealthy...), excluded...)
	if len(unhealthy) > MaxUnhealthyListed {
		unhealthy = unhealthy[:MaxUnhealthyListed]
	}
	r := Report{Status: &v1alpha1.EndpointsStatus{
		Total:     int32(v.Total),
		Healthy:   int32(v.Healthy),
		Summary:   strconv.Itoa(v.Healthy) + "/" + strconv.Itoa(v.Total),
		Unhealthy: unhealthy,
	}}
	for _, ep := range v.Endpoints {
		if ep.Ready {
			r.Ready++
		}
	}
	switch {
	case v.Total == 0 && len(excluded) > 0:
		r.Reason, r.Message = v1alpha1.IntentReasonNoBackends, "no usable backends: "+excluded[0].Message
	case v.Total == 0:
		r.Reason, r.Message = v1alpha1.IntentReasonNoBackends, "no backends: no running pod with an IP matches the selector, and no static backends are listed"
	case v.BelowFloor && len(v.Families) > 1:
		// Dual-stack: the floor holds for each family apart.
		r.Reason = v1alpha1.IntentReasonBelowHealthyFloor
		parts := make([]string, 0, len(v.BelowFloorFamilies))
		for _, fam := range v.BelowFloorFamilies {
			fc := v.Families[fam]
			parts = append(parts, fmt.Sprintf("only %d of %d %s endpoints are healthy", fc.Healthy, fc.Total, fam))
		}
		r.Message = fmt.Sprintf("%s, below minHealthyPercent %d%%: every pod-ready endpoint of that family stays in traffic; see status.endpoints.unhealthy",
			strings.Join(parts, ", and "), floor)
	case v.BelowFloor:
		r.Reason = v1alpha1.IntentReasonBelowHealthyFloor
		r.Message = fmt.Sprintf("only %d of %d endpoints are healthy, below minHealthyPercent %d%%: every pod-ready endpoint stays in traffic; see status.endpoints.unhealthy",
			v.Healthy, v.Total, floor)
	case v.Healthy < v.Total:
		r.Reason = v1alpha1.IntentReasonDegraded
		r.Message = fmt.Sprintf("%d of %d endpoints are healthy; the others are out of traffic (see status.endpoints.unhealthy)", v.Healthy, v.Total)
	default:
		r.Healthy, r.Reason = true, v1alpha1.IntentReasonAllHealthy
		r.Message = fmt.Sprintf("all %d endpoints are healthy", v.Total)
	}
	return r
}
