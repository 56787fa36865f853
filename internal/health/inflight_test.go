package health

import "testing"

func TestInFlightForFollowsTheFileLimit(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{
		{0, minDefaultInFlight},
		{256, minDefaultInFlight},
		{1024, 256},                       // (1024-512)/2
		{4096, 1792},                      // (4096-512)/2
		{20000, maxDefaultInFlight},       // this machine's
		{1 << 20, maxDefaultInFlight},     // a container's usual limit
		{^uint64(0), maxDefaultInFlight},  // unlimited
		{fdsKept + 2, minDefaultInFlight}, // one slot's worth, below the floor
	} {
		if got := inFlightFor(tc.nofile); got != tc.want {
			t.Errorf("inFlightFor(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
	if got := DefaultMaxInFlight(); got < minDefaultInFlight || got > maxDefaultInFlight {
		t.Errorf("DefaultMaxInFlight() = %d, outside [%d, %d]", got, minDefaultInFlight, maxDefaultInFlight)
	}
}
