package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFarmAnswersFailsVanishesAndCloses(t *testing.T) {
	SkipUnlessRoot(t) // the subtest's New would skip only the subtest
	const n = 1000
	var f *Farm
	t.Run("farm", func(t *testing.T) {
		began := time.Now()
		f = NewFarm(t, n)
		t.Logf("a farm of %d addresses in %s, range %s", n, time.Since(began).Round(time.Millisecond), f.Prefix)
		checkFarmAddrs(t, f, n)
		checkFarmSysctls(t, f)

		// Every address answers, from the root namespace, and each
		// request is counted to the address it was sent to only.
		if errs := getAll(f.Addrs, http.StatusOK); len(errs) > 0 {
			t.Fatalf("%d of %d addresses did not answer 200, e.g. %v", len(errs), n, errs[0])
		}
		for i, c := range f.Requests() {
			if c != 1 {
				t.Fatalf("address %d (%s) counted %d requests after one request to each, want 1", i, f.Addrs[i], c)
			}
		}
		wantFarmStatus(t, f.Addrs[7], http.StatusOK)
		for i, c := range f.Requests() {
			if want := uint64(1) + boolN(i == 7); c != want {
				t.Fatalf("address %d (%s) counted %d requests, want %d", i, f.Addrs[i], c, want)
			}
		}

		// The farm's own end of the link answers, but is no backend.
		if code, err := get(f.peerIP); err != nil || code != http.StatusNotFound {
			t.Errorf("GET /healthz at the farm's link address %s: %d, %v; want 404", f.peerIP, code, err)
		}

		// Failing addresses answer 503, and exactly those.
		failing := []netip.Addr{f.Addrs[0], f.Addrs[10], f.Addrs[500], f.Addrs[n-1]}
		f.SetFailing(failing, true)
		for _, a := range []netip.Addr{f.Addrs[1], f.Addrs[9], f.Addrs[11], f.Addrs[n-2]} {
			wantFarmStatus(t, a, http.StatusOK)
		}
		if errs := getAll(failing, http.StatusServiceUnavailable); len(errs) > 0 {
			t.Fatalf("failing addresses: %v", errors.Join(errs...))
		}
		f.SetFailing(failing, false)
		if errs := getAll(failing, http.StatusOK); len(errs) > 0 {
			t.Fatalf("failing no more: %v", errors.Join(errs...))
		}

		// Vanished addresses let connects time out, as a dead node does;
		// their neighbours answer on.
		gone := []netip.Addr{f.Addrs[3], f.Addrs[4], f.Addrs[600]}
		if err := f.Vanish(gone); err != nil {
			t.Fatal(err)
		}
		for _, a := range gone {
			wantConnectTimeout(t, a)
		}
		for _, a := range []netip.Addr{f.Addrs[2], f.Addrs[5], f.Addrs[599], f.Addrs[601]} {
			wantFarmStatus(t, a, http.StatusOK)
		}
		if err := f.Vanish(gone[:1]); err == nil {
			t.Errorf("Vanish of an address already gone succeeded")
		}
		if err := f.Restore(gone); err != nil {
			t.Fatal(err)
		}
		for _, a := range gone {
			pollFarmStatus(t, a, http.StatusOK)
		}

		if err := f.Vanish([]netip.Addr{netip.MustParseAddr("10.1.2.3")}); err == nil {
			t.Errorf("Vanish of an address outside the farm succeeded")
		}
		if err := f.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := f.Restore(gone); err == nil {
			t.Errorf("Restore after Close succeeded")
		}
	})
	if f == nil {
		return
	}
	// Closed, and the test's cleanup has run too: nothing is left.
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	} else if strings.Contains(string(out), f.Namespace) {
		t.Errorf("namespace %s left after Close:\n%s", f.Namespace, out)
	}
	if out, err := ip("-4", "route", "show", "table", "main"); err != nil {
		t.Fatalf("ip route: %v: %s", err, out)
	} else if strings.Contains(out, f.Prefix.String()) || strings.Contains(out, f.rootLink) {
		t.Errorf("route for %s or link %s left after Close:\n%s", f.Prefix, f.rootLink, out)
	}
	if _, err := net.InterfaceByName(f.rootLink); err == nil {
		t.Errorf("link %s left after Close", f.rootLink)
	}
}

func TestFarmSizes(t *testing.T) {
	ctx := t.Context()
	for _, n := range []int{0, -1, MaxFarm + 1} {
		if f, err := StartFarm(ctx, n); err == nil {
			f.Close()
			t.Errorf("StartFarm(%d) succeeded", n)
		}
	}
	// One address, and two farms side by side in ranges of their own.
	a, b := NewFarm(t, 1), NewFarm(t, 2)
	if a.Prefix.Overlaps(b.Prefix) {
		t.Fatalf("two farms share a range: %s and %s", a.Prefix, b.Prefix)
	}
	checkFarmAddrs(t, a, 1)
	checkFarmAddrs(t, b, 2)
	wantFarmStatus(t, a.Addrs[0], http.StatusOK)
	wantFarmStatus(t, b.Addrs[1], http.StatusOK)
	if got := a.Requests(); got[0] != 1 {
		t.Errorf("farm a counted %v, want [1]", got)
	}
	if got := b.Requests(); got[0] != 0 || got[1] != 1 {
		t.Errorf("farm b counted %v, want [0 1]", got)
	}

	// The largest farm is made in seconds, and its last links work as
	// its first.
	began := time.Now()
	big := NewFarm(t, MaxFarm)
	t.Logf("a farm of %d addresses in %s", MaxFarm, time.Since(began).Round(time.Millisecond))
	checkFarmAddrs(t, big, MaxFarm)
	ends := []netip.Addr{big.Addrs[0], big.Addrs[perHolder], big.Addrs[MaxFarm-1]}
	if errs := getAll(ends, http.StatusOK); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	began = time.Now()
	if err := big.Vanish(big.Addrs[MaxFarm-2000:]); err != nil {
		t.Fatal(err)
	}
	t.Logf("2,000 addresses vanished in %s", time.Since(began).Round(time.Millisecond))
	wantConnectTimeout(t, big.Addrs[MaxFarm-1])
	wantFarmStatus(t, big.Addrs[MaxFarm-2001], http.StatusOK)
	if err := big.Restore(big.Addrs[MaxFarm-2000:]); err != nil {
		t.Fatal(err)
	}
	wantFarmStatus(t, big.Addrs[MaxFarm-1], http.StatusOK)
	if got := big.Requests(); got[0] != 1 || got[MaxFarm-1] != 2 || got[MaxFarm-2] != 0 {
		t.Errorf("the full farm counted %d, %d, %d at its first, last and last but one; want 1, 2, 0", got[0], got[MaxFarm-1], got[MaxFarm-2])
	}
}

func checkFarmAddrs(t *testing.T, f *Farm, n int) {
	t.Helper()
	if !strings.HasPrefix(f.Namespace, namePrefix) {
		t.Errorf("namespace %q does not start with %q", f.Namespace, namePrefix)
	}
	if len(f.Addrs) != n || len(f.Requests()) != n {
		t.Fatalf("%d addresses and %d counters, want %d", len(f.Addrs), len(f.Requests()), n)
	}
	if f.Prefix.Bits() != 16 || !netip.MustParsePrefix("10.0.0.0/8").Contains(f.Prefix.Addr()) {
		t.Fatalf("range %s is not a /16 under 10.0.0.0/8", f.Prefix)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range f.Addrs {
		if !a.Is4() || a.IsLoopback() || !f.Prefix.Contains(a) || seen[a] || a == f.rootIP || a == f.peerIP {
			t.Fatalf("address %s: want distinct IPv4 addresses in %s, not the link's", a, f.Prefix)
		}
		seen[a] = true
	}
}

// checkFarmSysctls checks the namespace's backlogs and forwarding.
func checkFarmSysctls(t *testing.T, f *Farm) {
	t.Helper()
	err := inNamespace(f.Namespace, func() error {
		for _, s := range farmSysctls {
			b, err := os.ReadFile(s.path)
			if err != nil {
				return err
			}
			if got := strings.TrimSpace(string(b)); got != s.value {
				return fmt.Errorf("%s = %s in the farm, want %s", s.path, got, s.value)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	// The listener's backlog, as ss shows it (Send-Q of a listening
	// socket).
	out, err := exec.Command("ip", "netns", "exec", f.Namespace, "ss", "-Hltn", fmt.Sprintf("sport = :%d", FarmPort)).CombinedOutput()
	if err != nil {
		t.Logf("ss in the farm (not checked): %v: %s", err, out)
		return
	}
	fields := strings.Fields(string(out))
	if len(fields) < 3 || fields[2] != strconv.Itoa(farmBacklog) {
		t.Errorf("the farm's listener: ss says %q, want a backlog (Send-Q) of %d", out, farmBacklog)
	}
}

var farmClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

func get(a netip.Addr) (int, error) {
	resp, err := farmClient.Get("http://" + net.JoinHostPort(a.String(), strconv.Itoa(FarmPort)) + "/healthz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// getAll GETs /healthz of every address, 32 at a time, and returns an error
// for each that did not answer want.
func getAll(addrs []netip.Addr, want int) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, 32)
	for _, a := range addrs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			code, err := get(a)
			if err == nil && code != want {
				err = fmt.Errorf("%s: status %d, want %d", a, code, want)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

func wantFarmStatus(t *testing.T, a netip.Addr, want int) {
	t.Helper()
	code, err := get(a)
	if err != nil || code != want {
		t.Fatalf("GET /healthz at %s: %d, %v; want %d", a, code, err, want)
	}
}

// pollFarmStatus GETs /healthz at a until it answers want, for five seconds.
func pollFarmStatus(t *testing.T, a netip.Addr, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, err := get(a)
		if err == nil && code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz at %s: %d, %v after 5s; want %d", a, code, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantConnectTimeout fails unless a connect to a times out (in 300 ms)
// rather than being refused or answered.
func wantConnectTimeout(t *testing.T, a netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(FarmPort)))
	if err == nil {
		conn.Close()
		t.Fatalf("connect to vanished %s succeeded", a)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connect to vanished %s: %v, want a timeout", a, err)
	}
}

func boolN(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
