package e2e

import (
	"testing"

	"github.com/netintent/netintent/internal/testnet"
)

func TestMain(m *testing.M) {
	// The leader-change test runs this binary as the server of each test
	// host.
	testnet.Main(m)
}
