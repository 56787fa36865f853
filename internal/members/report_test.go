package members

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netintent/netintent/internal/health"
)

func TestReportRoundTrips(t *testing.T) {
	changed := time.UnixMilli(1764850000123)
	report := health.Verdicts{
		{Namespace: "shop", Name: "web"}: {
			"10.0.0.1":      {Healthy: true},
			"10.0.0.2":      {Healthy: false, Probed: true, Failure: "Timeout", LastChange: changed},
			"fd00::2":       {Healthy: false, Probed: true, Failure: "ForbiddenTarget", Forbidden: "cloud metadata address"},
			"api.example.z": {Healthy: true, Probed: true, Addresses: 3, Passed: 2, LastChange: changed},
			"10.0.0.3":      {Healthy: false, Failure: "GRPCError Unavailable"},
		},
		{Namespace: "db", Name: "pg"}: {"10.0.1.1": {Healthy: false, Probed: true}},
	}
	text := Encode(report)
	if again := Encode(report); again != text {
		t.Fatalf("two encodings differ:\n%s\n%s", text, again)
	}
	got, err := Decode(text)
	if err != nil {
		t.Fatalf("Decode: %v\n%s", err, text)
	}
	if !reflect.DeepEqual(got, report) {
		t.Errorf("round trip:\n got %+v\nwant %+v\ntext:\n%s", got, report, text)
	}
	if !strings.HasPrefix(text, "db/pg 10.0.1.1 - 0 0 0") {
		t.Errorf("text does not start with the sorted first line:\n%s", text)
	}
}

func TestDecodeRefusesWhatEncodeNeverWrites(t *testing.T) {
	for _, text := range []string{
		"shop/web 10.0.0.1 +",
		"shopweb 10.0.0.1 + 0 0 0",
		"shop/web 10.0.0.1 ? 0 0 0",
		"shop/web 10.0.0.1 + x 0 0",
		"shop/web 10.0.0.1 - 0 0 0 Timeout %zz",
	} {
		if _, err := Decode(text); err == nil {
			t.Errorf("Decode(%q) took it", text)
		}
	}
	if got, err := Decode(""); err != nil || len(got) != 0 {
		t.Errorf("Decode of an empty report: %v, %v", got, err)
	}
}

func TestNewNameIsALeaseName(t *testing.T) {
	for host, want := range map[string]string{
		"netintent-7d9f-abcde":  "netintent-7d9f-abcde-x1y2z",
		"My.Laptop_local":       "my-laptop-local-x1y2z",
		"":                      "x1y2z",
		strings.Repeat("a", 70): strings.Repeat("a", 40) + "-x1y2z",
	} {
		if got := NewName(host, "x1y2z"); got != want {
			t.Errorf("NewName(%q) = %q, want %q", host, got, want)
		}
	}
}
