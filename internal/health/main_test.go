package health

import (
	"os"
	"testing"

	"github.com/netintent/netintent/internal/testnet"
)

func TestMain(m *testing.M) {
	// The end-to-end tests run this binary as the server of each test host.
	testnet.MaybeServe()
	os.Exit(m.Run())
}
