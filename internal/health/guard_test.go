package health

import (
	"context"
	"errors"
	"net"
	"net/http"
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
		// Cloud metadata beyond the link-local 169.254.169.254.
		{"fd00:ec2::254", "a cloud metadata address"},
		{"fd00:ec2::253", ""},
		// NAT64, well-known prefix: the last 32 bits.
		{"64:ff9b::7f00:1", "a NAT64 address embedding 127.0.0.1, which is loopback"},
		{"64:ff9b::127.0.0.1", "a NAT64 address embedding 127.0.0.1, which is loopback"},
		{"64:ff9b::a9fe:a9fe", "a NAT64 address embedding 169.254.169.254, which is link-local"},
		{"64:ff9b::0.0.0.0", "a NAT64 address embedding 0.0.0.0, which is unspecified"},
		{"64:ff9b::224.0.0.1", "a NAT64 address embedding 224.0.0.1, which is multicast"},
		{"64:ff9b::10.0.0.5", ""},
		{"64:ff9b::1:7f00:1", ""}, // outside the /96
		// NAT64, local-use prefix, at each RFC 6052 position.
		{"64:ff9b:1:7f00:0:100::", "a NAT64 address embedding 127.0.0.1, which is loopback"},         // /48
		{"64:ff9b:1:a9:fe:a9fe::", "a NAT64 address embedding 169.254.169.254, which is link-local"}, // /56
		{"64:ff9b:1::7f:0:100:0", "a NAT64 address embedding 127.0.0.1, which is loopback"},          // /64
		{"64:ff9b:1::7f00:1", "a NAT64 address embedding 127.0.0.1, which is loopback"},              // /96
		{"64:ff9b:1:a00:0:500::", ""}, // 10.0.0.5 at /48
		{"64:ff9b:1::a00:5", ""},      // 10.0.0.5 at /96
		// IPv4-compatible (deprecated) ::a.b.c.d.
		{"::127.0.0.1", "an IPv4-compatible address embedding 127.0.0.1, which is loopback"},
		{"::169.254.169.254", "an IPv4-compatible address embedding 169.254.169.254, which is link-local"},
		{"::10.0.0.5", ""},
		// IPv4-mapped and IPv4-translated forms.
		{"::ffff:7f00:1", "loopback"},
		{"::ffff:0:7f00:1", "an IPv4-translated address embedding 127.0.0.1, which is loopback"},
		{"::ffff:0:a00:5", ""},
		// 6to4: bits 16-47.
		{"2002:7f00:1::1", "a 6to4 address embedding 127.0.0.1, which is loopback"},
		{"2002:a9fe:a9fe::", "a 6to4 address embedding 169.254.169.254, which is link-local"},
		{"2002:e000:1::5", "a 6to4 address embedding 224.0.0.1, which is multicast"},
		{"2002:a00:5::1", ""},
		// Teredo: the server in bits 32-63, the client inverted in 96-127.
		{"2001:0:7f00:1::1", "a Teredo address embedding 127.0.0.1, which is loopback"},
		{"2001:0:a00:5::80ff:fffe", "a Teredo address embedding 127.0.0.1, which is loopback"},
		{"2001:0:a00:5::f5ff:fffa", ""},
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
			err := (*Guard)(nil).control("tcp", net.JoinHostPort(tt.addr, "80"), nil)
			if got := errors.Is(err, ErrForbiddenTarget); got != (tt.want != "") {
				t.Errorf("control(%s) = %v", tt.addr, err)
			}
		})
	}
	if err := (*Guard)(nil).control("tcp", "not-an-address:80", nil); !errors.Is(err, ErrForbiddenTarget) {
		t.Errorf("control of an unparsable address = %v, want ErrForbiddenTarget", err)
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
		"fd00:ec2::254", "64:ff9b::7f00:1", "64:ff9b:1::7f00:1", "::127.0.0.1", "2002:7f00:1::1",
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
	// func refuses on its own: dial through the dialer and the HTTP round
	// trip that Check uses.
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
		t.Run("roundtrip/"+addr, func(t *testing.T) {
			urlHost := hostPort
			if strings.Contains(host, "%") {
				urlHost = strings.Replace(hostPort, "%", "%25", 1) // a zone in a URL
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+urlHost+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.roundTrip(t.Context(), hostPort, req); !errors.Is(err, ErrForbiddenTarget) {
				t.Fatalf("GET %s = %v, want ErrForbiddenTarget", hostPort, err)
			}
		})
	}
	if _, err := (&net.Dialer{Timeout: time.Second, Control: (*Guard)(nil).control}).Dial("tcp", ln4.Addr().String()); !errors.Is(err, ErrForbiddenTarget) {
		t.Errorf("the guarded dialer dialled %s: %v", ln4.Addr(), err)
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

func TestParseGuard(t *testing.T) {
	tests := []struct {
		flag    string
		want    string // the ranges, as String gives them
		wantErr string
	}{
		{flag: "", want: ""},
		{flag: "  ", want: ""},
		{flag: "10.244.0.0/16", want: "10.244.0.0/16"},
		{flag: "10.244.0.0/16, 192.168.10.0/24,fd00:10:244::/56", want: "10.244.0.0/16,192.168.10.0/24,fd00:10:244::/56"},
		{flag: "0.0.0.0/0,::/0", want: "0.0.0.0/0,::/0"},
		{flag: "10.244.0.1/16", wantErr: "10.244.0.1/16 has host bits set; did you mean 10.244.0.0/16?"},
		{flag: "10.244.0.0", wantErr: `"10.244.0.0" is not a CIDR`},
		{flag: "10.244.0.0/33", wantErr: `"10.244.0.0/33" is not a CIDR`},
		{flag: "pods", wantErr: `"pods" is not a CIDR`},
		{flag: "10.0.0.0/8,,10.1.0.0/16", wantErr: "empty entry"},
		{flag: "10.0.0.0/8,", wantErr: "empty entry"},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			g, err := ParseGuard(tt.flag)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseGuard(%q) = %v, %v; want error with %q", tt.flag, g, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseGuard(%q): %v", tt.flag, err)
			}
			if g.String() != tt.want {
				t.Errorf("ParseGuard(%q) = %q, want %q", tt.flag, g.String(), tt.want)
			}
		})
	}
}

func TestGuardAllowedRanges(t *testing.T) {
	g, err := ParseGuard("10.244.0.0/16,192.168.10.0/24,fd00:10:244::/56,127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want string
	}{
		{"10.244.3.7", ""},
		{"::ffff:10.244.3.7", ""}, // judged as the IPv4 address
		{"192.168.10.200", ""},
		{"fd00:10:244:ff::5", ""},
		{"10.245.0.1", reasonNotAllowed},
		{"192.168.11.1", reasonNotAllowed},
		{"fd00:10:245::5", reasonNotAllowed},
		{"8.8.8.8", reasonNotAllowed},
		// The fixed rule comes first, whatever the ranges allow.
		{"127.0.0.1", "loopback"},
		{"64:ff9b::a9fe:a9fe", "a NAT64 address embedding 169.254.169.254, which is link-local"},
	}
	for _, tt := range tests {
		addr := netip.MustParseAddr(tt.addr)
		if got := g.Reason(addr); got != tt.want {
			t.Errorf("Reason(%s) = %q, want %q", tt.addr, got, tt.want)
		}
		err := g.control("tcp", net.JoinHostPort(tt.addr, "80"), nil)
		var fe *ForbiddenError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("control(%s) = %v, want nil", tt.addr, err)
		case tt.want != "" && (!errors.As(err, &fe) || fe.Reason != tt.want || !errors.Is(err, ErrForbiddenTarget)):
			t.Errorf("control(%s) = %v, want a ForbiddenError with reason %q", tt.addr, err, tt.want)
		}
	}
	var none *Guard
	if got := none.Reason(netip.MustParseAddr("8.8.8.8")); got != "" {
		t.Errorf("the nil guard refuses 8.8.8.8: %q", got)
	}
}

// TestAllowedRangesRefuseBeforeConnect dials a listener on loopback with
// the fixed rule off (allowForbidden) and the allowed ranges on: outside
// the ranges, no probe reaches the listener; inside, it does.
func TestAllowedRangesRefuseBeforeConnect(t *testing.T) {
	ln, _ := listenLoopbackPair(t)
	port := ln.Addr().(*net.TCPAddr).Port
	elsewhere, err := ParseGuard("10.244.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	refusing := &Checker{allowForbidden: true, Guard: elsewhere}
	for _, kind := range []ProbeKind{ProbeTCP, ProbeHTTP} {
		for _, addr := range []string{"127.0.0.1", "localhost"} {
			err := refusing.Check(t.Context(), addr, ProbeSpec{Kind: kind, Port: port, Timeout: 5 * time.Second})
			if !errors.Is(err, ErrForbiddenTarget) || FailureClass(err) != FailureForbiddenTarget {
				t.Errorf("%s probe of %s outside the allowed ranges = %v, want ForbiddenTarget", kind, addr, err)
			}
		}
	}
	// The first connection the listener sees must be the one allowed.
	here, err := ParseGuard("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	allowed := &Checker{allowForbidden: true, Guard: here}
	done := make(chan error, 1)
	go func() {
		done <- allowed.Check(context.WithoutCancel(t.Context()), "127.0.0.1", ProbeSpec{Kind: ProbeTCP, Port: port, Timeout: 5 * time.Second})
	}()
	if err := ln.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("the allowed probe never arrived: %v", err)
	}
	defer conn.Close()
	if err := <-done; err != nil {
		t.Fatalf("probe inside the allowed ranges: %v", err)
	}
	if err := ln.SetDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if extra, err := ln.Accept(); err == nil {
		extra.Close()
		t.Errorf("the listener saw a second connection, from %s: a refused probe reached it", extra.RemoteAddr())
	}
}
