package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func TestValidateFlags(t *testing.T) {
	valid := config{dnsTTL: 30, dnsCacheMaxBytes: "32Mi", dnsMaxConcurrent: 1000, probeMaxInFlight: 4096,
		kubeAPIQPS: defaultKubeAPIQPS, kubeAPIBurst: defaultKubeAPIBurst, endpointsQPS: defaultEndpointsQPS,
		endpointsBurst: defaultEndpointsBurst, intentWorkers: defaultIntentWorkers, gcPercent: defaultGCPercent,
		leaseDuration: defaultLeaseDuration, renewDeadline: defaultRenewDeadline, retryPeriod: defaultRetryPeriod,
		shareLease: defaultShareLease}
	if err := valid.validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	if n, _ := valid.cacheMaxBytes(); n != 32<<20 {
		t.Errorf("32Mi = %d bytes, want %d", n, 32<<20)
	}
	cases := []struct {
		edit func(*config)
		want string
	}{
		{func(c *config) { c.dnsTTL = 0 }, "--dns-ttl=0"},
		{func(c *config) { c.dnsCacheMaxBytes = "lots" }, "--dns-cache-max-bytes=\"lots\": give a byte count"},
		{func(c *config) { c.dnsCacheMaxBytes = "1Ki" }, "--dns-cache-max-bytes=1Ki: give from 64Ki"},
		{func(c *config) { c.dnsCacheMaxBytes = "-32Mi" }, "--dns-cache-max-bytes=-32Mi: give from 64Ki"},
		{func(c *config) { c.dnsCacheMaxBytes = "3Gi" }, "--dns-cache-max-bytes=3Gi: give from 64Ki"},
		{func(c *config) { c.dnsMaxConcurrent = 0 }, "--dns-max-concurrent=0: give at least 1"},
		{func(c *config) { c.probeMaxInFlight = 0 }, "--probe-max-in-flight=0: give at least 1"},
		{func(c *config) { c.endpointsQPS = -1 }, "--kube-api-endpoints-qps=-1: give a positive rate"},
		{func(c *config) { c.endpointsBurst = 0 }, "--kube-api-endpoints-burst=0: give at least 1"},
		{func(c *config) { c.kubeAPIQPS = 0 }, "--kube-api-qps=0: give a positive rate"},
		{func(c *config) { c.kubeAPIBurst = 0 }, "--kube-api-burst=0: give at least 1"},
		{func(c *config) { c.intentWorkers = 0 }, "--intent-workers=0: give at least 1"},
		{func(c *config) { c.gcPercent = 0 }, "--gc-percent=0: give at least 1"},
		{func(c *config) { c.gcPercent = -1 }, "--gc-percent=-1: give at least 1"},
		{func(c *config) { c.shareLease = 500 * time.Millisecond }, "--probe-share-lease-duration=500ms: give at least 1s"},
		{func(c *config) { c.memberName = "Replica_1" }, `--probe-share-member-name: member name "Replica_1": give lower-case letters`},
		{func(c *config) { c.leaseDuration = 0 }, "--leader-elect-lease-duration=0s: give a positive duration"},
		{func(c *config) { c.renewDeadline = -time.Second }, "--leader-elect-renew-deadline=-1s: give a positive duration"},
		{func(c *config) { c.retryPeriod = 0 }, "--leader-elect-retry-period=0s: give a positive duration"},
		{func(c *config) { c.leaseDuration = 2500 * time.Millisecond }, "--leader-elect-lease-duration=2.5s: give whole seconds"},
		{func(c *config) { c.leaseDuration = 500 * time.Millisecond }, "--leader-elect-lease-duration=500ms: give whole seconds"},
		{func(c *config) { c.renewDeadline = 3 * time.Second }, "--leader-elect-lease-duration=3s must be greater than --leader-elect-renew-deadline=3s"},
		{func(c *config) { c.leaseDuration, c.renewDeadline = 2*time.Second, 3*time.Second }, "--leader-elect-lease-duration=2s must be greater than --leader-elect-renew-deadline=3s"},
		// 1.2 × 2s is 2.4s: not less than a 2s renew deadline.
		{func(c *config) { c.retryPeriod = 2 * time.Second }, "--leader-elect-renew-deadline=2s must be greater than --leader-elect-retry-period=2s times 1.2"},
		{func(c *config) { c.retryPeriod = 1700 * time.Millisecond }, "--leader-elect-renew-deadline=2s must be greater than --leader-elect-retry-period=1.7s times 1.2"},
	}
	for _, tc := range cases {
		c := valid
		tc.edit(&c)
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validate() = %v, want an error with %q", err, tc.want)
		}
	}
	for _, ok := range []string{"64Ki", "100M", "2Gi", "1048576"} {
		c := valid
		c.dnsCacheMaxBytes = ok
		if err := c.validate(); err != nil {
			t.Errorf("--dns-cache-max-bytes=%s: %v", ok, err)
		}
	}
}

// TestLeaderElectionTimings checks that the timings validate accepts are
// those client-go's leader elector accepts, bar a lease duration of a
// fraction of a second, which the Lease cannot record.
func TestLeaderElectionTimings(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	cases := []struct {
		lease, renew, retry time.Duration
		whole               bool // the lease is whole seconds
	}{
		{defaultLeaseDuration, defaultRenewDeadline, defaultRetryPeriod, true},
		{5 * s, 3 * s, s, true},       // kube-vip's
		{15 * s, 10 * s, 2 * s, true}, // client-go's and controller-runtime's
		{3 * s, 2 * s, 1666 * ms, true},
		{3 * s, 2 * s, 1667 * ms, true},
		{3 * s, 2 * s, 2 * s, true},
		{3 * s, 3 * s, 300 * ms, true},
		{2 * s, 3 * s, 300 * ms, true},
		{3 * s, 2 * s, 0, true},
		{3 * s, 0, 300 * ms, true},
		{0, 2 * s, 300 * ms, true},
		{3 * s, -2 * s, 300 * ms, true},
		{2500 * ms, 2 * s, 300 * ms, false},
	}
	for _, tc := range cases {
		c := config{leaseDuration: tc.lease, renewDeadline: tc.renew, retryPeriod: tc.retry}
		err := c.validateLeaderElection()
		_, clientGoErr := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          &resourcelock.LeaseLock{LockConfig: resourcelock.ResourceLockConfig{Identity: "replica"}},
			LeaseDuration: tc.lease, RenewDeadline: tc.renew, RetryPeriod: tc.retry,
			Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {}},
		})
		want := clientGoErr == nil && tc.whole
		if (err == nil) != want {
			t.Errorf("lease %s, renew deadline %s, retry period %s: validate says %v, client-go says %v", tc.lease, tc.renew, tc.retry, err, clientGoErr)
		}
	}
}
