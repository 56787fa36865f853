package e2e

import (
	"os"
	"testing"

	"github.com/netintent/netintent/internal/testnet"
)

func TestMain(m *testing.M) {
	// The leader-change test runs this binary as the server of each test
	// host.
	testnet.MaybeServe()
	os.Exit(m.Run())
}
