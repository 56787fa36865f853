package dnsserver

import (
	"testing"

	"github.com/netintent/netintent/internal/testnet"
)

func TestMain(m *testing.M) {
	// The CoreDNS parity test runs this binary as the server of each test
	// host (backends at non-loopback addresses, for real health checks).
	testnet.Main(m)
}
