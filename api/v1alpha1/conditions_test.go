package v1alpha1_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/netintent/netintent/api/v1alpha1"
)

// TestDocumentedReasonsExist checks that every reason the docs' tables (troubleshooting, pools)
// name is a constant of the API: a person reading a condition finds it
// explained, and a reason explained is one the operator can give.
func TestDocumentedReasonsExist(t *testing.T) {
	known := map[string]bool{}
	for _, r := range []string{
		v1alpha1.IntentReasonReady, v1alpha1.IntentReasonApplied, v1alpha1.IntentReasonServiceConflict,
		v1alpha1.IntentReasonRecreating, v1alpha1.IntentReasonApplyFailed, v1alpha1.IntentReasonAllHealthy,
		v1alpha1.IntentReasonDegraded, v1alpha1.IntentReasonBelowHealthyFloor, v1alpha1.IntentReasonNoBackends,
		v1alpha1.IntentReasonNoHealthyTarget,
		v1alpha1.AddressReasonAssigned, v1alpha1.AddressReasonPending, v1alpha1.AddressReasonPoolExhausted,
		v1alpha1.AddressReasonAddressTaken, v1alpha1.AddressReasonAddressNotInPool, v1alpha1.AddressReasonPoolNotAllowed,
		v1alpha1.AddressReasonNoPool, v1alpha1.AddressReasonNoDualStackPool,
		v1alpha1.AddressPoolReasonInUse, v1alpha1.AddressPoolReasonOverlap, v1alpha1.AddressPoolReasonInvalid,
		string(v1alpha1.EndpointReasonNotReady), string(v1alpha1.EndpointReasonProbeFailed),
		string(v1alpha1.EndpointReasonForbiddenTarget), string(v1alpha1.EndpointReasonNoSuchPort),
		string(v1alpha1.EndpointReasonFamilyNotServed),
	} {
		known[r] = true
	}
	// The reference pages that hold the tables.
	var docs []byte
	for _, page := range []string{"../../docs/troubleshooting.md", "../../docs/pools.md"} {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(append(docs, b...), '\n')
	}
	// The condition table ("| condition | reason | ...") and the address
	// reason table ("| reason | meaning and what to do |").
	word := regexp.MustCompile("`([A-Z][A-Za-z]+)`")
	var documented []string
	table := ""
	for _, line := range strings.Split(string(docs), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		switch {
		case !strings.HasPrefix(line, "|"):
			table = ""
		case strings.HasPrefix(line, "| condition | reason |"):
			table = "conditions"
		case strings.HasPrefix(line, "| reason | meaning"):
			table = "reasons"
		case strings.HasPrefix(line, "|---"):
		case table == "conditions" && len(cells) >= 3:
			for _, w := range word.FindAllStringSubmatch(cells[1], -1) {
				documented = append(documented, w[1])
			}
			if strings.Contains(cells[1], v1alpha1.IntentReasonDegraded) {
				// The reasons an endpoint is out of traffic.
				for _, w := range word.FindAllStringSubmatch(cells[2], -1) {
					documented = append(documented, w[1])
				}
			}
		case table == "reasons" && len(cells) >= 2:
			for _, w := range word.FindAllStringSubmatch(cells[0], -1) {
				documented = append(documented, w[1])
			}
		}
	}
	if len(documented) < 20 {
		t.Fatalf("found only %d reasons in the docs' tables: %v; has their layout changed?", len(documented), documented)
	}
	for _, r := range documented {
		if !known[r] {
			t.Errorf("the docs document reason %s, which is no constant of the API", r)
		}
	}
}
