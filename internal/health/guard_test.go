package health

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestForbiddenReason(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"127.0.0.1", "loopback"},
		{"127.255.0.9", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"169.254.169.254", "link-local"},
		{"169.254.0.1", "link-local"},
		{"::ffff:169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf::1", "link-local"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"::ffff:224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"ff0e::1", "multicast"},
		{"10.0.0.5", ""},
		{"192.0.2.10", ""},
		{"8.8.8.8", ""},
		{"169.253.255.255", ""},
		{"169.255.0.1", ""},
		{"128.0.0.1", ""},
		{"223.255.255.255", ""},
		{"2001:db8::1", ""},
		{"fd00::2", ""},
		{"fec0::1", ""}, // site-local: deprecated, not link-local
		{"::ffff:10.0.0.5", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			addr := netip.MustParseAddr(tt.addr)
			if got := ForbiddenReason(addr); got != tt.want {
				t.Errorf("ForbiddenReason(%s) = %q, want %q", tt.addr, got, tt.want)
			}
			if got := IsForbidden(addr); got != (tt.want != "") {
				t.Errorf("IsForbidden(%s) = %v", tt.addr, got)
			}
			// The dialer's Control func gets host:port with the resolved IP.
			err := guardControl("tcp", net.JoinHostPort(tt.addr, "80"), nil)
			if got := errors.Is(err, ErrForbiddenTarget); got != (tt.want != "") {
				t.Errorf("guardControl(%s) = %v", tt.addr, err)
			}
		})
	}
	if err := guardControl("tcp", "not-an-address:80", nil); !errors.Is(err, ErrForbiddenTarget) {
		t.Errorf("guardControl of an unparsable address = %v, want ErrForbiddenTarget", err)
	}
}

// TestGuardRefusesBeforeConnect dials forbidden targets with the default
// Checker, the way the prober does, and proves that none reached the wire:
// listeners on the loopback addresses those dials would reach must see no
// connection before a sentinel connection made afterwards.
func TestGuardRefusesBeforeConnect(t *testing.T) {
	ln4, ln6 := listenLoopbackPair(t)
	port := ln4.Addr().(*net.TCPAddr).Port

	var c Checker
	addrs := []string{
		"127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::",
		"localhost", // resolved; the guard judges the address dialled
		"169.254.169.254", "fe80::1", "fe80::1%lo", "[::1]", "224.0.0.1", "ff02::1",
	}
	for _, addr := range addrs {
		for _, kind := range []ProbeKind{ProbeTCP, ProbeHTTP} {
			t.Run(string(kind)+"/"+addr, func(t *testing.T) {
				spec := ProbeSpec{Kind: kind, Port: port, Timeout: 5 * time.Second}
				err := c.Check(t.Context(), addr, spec)
				if !errors.Is(err, ErrForbiddenTarget) {
					t.Fatalf("Check(%s) = %v, want ErrForbiddenTarget", addr, err)
				}
				if got := resultOf(err); got != resultRefused {
					t.Errorf("result label %q, want %q", got, resultRefused)
				}
			})
		}
	}

	// Below Check's own judgement of IP literals, the dialer's Control
	// func refuses on its own: dial through the dialer and the HTTP client
	// that Check uses.
	c.init()
	for _, addr := range addrs {
		host := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		hostPort := net.JoinHostPort(host, strconv.Itoa(port))
		t.Run("dialer/"+addr, func(t *testing.T) {
			conn, err := c.dialer.DialContext(t.Context(), "tcp", hostPort)
			if err == nil {
				conn.Close()
			}
			if !errors.Is(err, ErrForbiddenTarget) {
				t.Fatalf("dial %s = %v, want ErrForbiddenTarget", hostPort, err)
			}
		})
		t.Run("transport/"+addr, func(t *testing.T) {
			if strings.Contains(host, "%") {
				hostPort = strings.Replace(hostPort, "%", "%25", 1) // a zone in a URL
			}
			resp, err := c.client.Get("http://" + hostPort + "/")
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, ErrForbiddenTarget) {
				t.Fatalf("GET %s = %v, want ErrForbiddenTarget", hostPort, err)
			}
		})
	}
	if _, err := GuardedDialer(time.Second).Dial("tcp", ln4.Addr().String()); !errors.Is(err, ErrForbiddenTarget) {
		t.Errorf("GuardedDialer dialled %s: %v", ln4.Addr(), err)
	}

	// Accept queues are first in, first out: had a refused dial connected,
	// it would be accepted before the sentinel.
	for _, ln := range []*net.TCPListener{ln4, ln6} {
		sentinel, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer sentinel.Close()
		if err := ln.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got.Close()
		if got.RemoteAddr().String() != sentinel.LocalAddr().String() {
			t.Errorf("listener %s accepted %s before the sentinel %s: a refused probe reached it",
				ln.Addr(), got.RemoteAddr(), sentinel.LocalAddr())
		}
	}
}

// listenLoopbackPair listens on 127.0.0.1 and ::1 on one port.
func listenLoopbackPair(t *testing.T) (*net.TCPListener, *net.TCPListener) {
	t.Helper()
	for range 20 {
		ln4, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := ln4.Addr().(*net.TCPAddr).Port
		ln6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err != nil {
			ln4.Close()
			continue
		}
		t.Cleanup(func() { ln4.Close(); ln6.Close() })
		return ln4, ln6.(*net.TCPListener)
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return nil, nil
}
