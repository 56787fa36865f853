package testenv

import (
	"errors"
	"net"
	"testing"
)

// FreeAddr returns 127.0.0.1:<port> with a port that is free for both TCP
// and UDP at the time of the call.
func FreeAddr() (string, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return addr, nil
	}
	return "", errors.New("no loopback port free for both TCP and UDP")
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
