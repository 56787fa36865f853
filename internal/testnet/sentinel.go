package testnet

import (
	"fmt"
	"net"
	"time"
)

// NothingConnected proves that nothing connected to ln before the call:
// accept queues are first in, first out, so it connects a sentinel and
// fails unless the first connection ln accepts (within five seconds) is the
// sentinel's. For tests that show a refused address was never dialled.
func NothingConnected(ln *net.TCPListener) error {
	sentinel, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("connecting the sentinel: %w", err)
	}
	defer sentinel.Close()
	if err := ln.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	got, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accepting the sentinel: %w", err)
	}
	got.Close()
	if got.RemoteAddr().String() != sentinel.LocalAddr().String() {
		return fmt.Errorf("%s accepted %s before the sentinel %s: something connected", ln.Addr(), got.RemoteAddr(), sentinel.LocalAddr())
	}
	return nil
}
