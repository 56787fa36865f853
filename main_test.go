package main

import (
	"strings"
	"testing"
)

func TestValidateFlags(t *testing.T) {
	valid := config{dnsTTL: 30, dnsCacheMaxBytes: "32Mi", dnsMaxConcurrent: 1000, probeMaxInFlight: 4096,
		kubeAPIQPS: defaultKubeAPIQPS, kubeAPIBurst: defaultKubeAPIBurst, endpointsQPS: defaultEndpointsQPS,
		endpointsBurst: defaultEndpointsBurst, intentWorkers: defaultIntentWorkers}
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
