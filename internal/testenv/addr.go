package testenv

import (
	"errors"
	"io"
	"net"
	"testing"
)

// FreeAddr returns 127.0.0.1:<port> with a port that is free for both TCP
// and UDP at the time of the call.
func FreeAddr() (string, error) {
	addrs, err := FreeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// FreeAddrs returns n addresses 127.0.0.1:<port>, each free for both TCP
// and UDP at the time of the call, and no two alike: each port is held
// until all are found, so the kernel cannot hand the same one out twice
// (as it may to calls of FreeAddr one after the other).
func FreeAddrs(n int) ([]string, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for tries := 0; len(addrs) < n; tries++ {
		if tries == 20*n {
			return nil, errors.New("no loopback port free for both TCP and UDP")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		pc, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			continue
		}
		held = append(held, pc)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// FreeAddrT is FreeAddr, failing the test when there is none.
func FreeAddrT(t testing.TB) string {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Port is the port of a host:port address.
func Port(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
