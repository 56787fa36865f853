package health

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/internal/testnet"
)

// nsName is the owner key written "namespace/name" in the tests.
func nsName(s string) types.NamespacedName {
	ns, name, _ := strings.Cut(s, "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}

func TestMain(m *testing.M) {
	// The end-to-end tests run this binary as the server of each test host.
	testnet.Main(m)
}
