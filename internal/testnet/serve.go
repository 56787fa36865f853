package testnet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The environment that tells a test binary, started by Host.Start inside a
// namespace, to serve instead of running tests.
const (
	serveEnv = "NETINTENT_TESTNET_SERVE" // e.g. "http:8080,tcp:9090,grpc:9091"
	addrEnv  = "NETINTENT_TESTNET_ADDR"  // the addresses to listen on, comma-separated
)

// The lines Host.SetHealthy writes to a server's stdin.
const (
	sickCommand = "sick" // /healthz answers 503, gRPC health NOT_SERVING
	wellCommand = "well" // /healthz answers 200, gRPC health SERVING again
	// closeCommand, followed by a space and an address, closes the
	// listeners on that address.
	closeCommand = "close"
)

// MaybeServe turns the test binary into a test host's server when Host.Start
// runs it, and never returns then; otherwise it returns at once. Call it
// first in TestMain (or in main of a program that starts hosts). The server
// exits when its stdin closes (the starting process is gone) or on SIGTERM.
func MaybeServe() {
	spec, ok := os.LookupEnv(serveEnv)
	if !ok {
		return
	}
	if err := serve(spec, os.Getenv(addrEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "testnet server:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func serve(spec, addrs string) error {
	// Listen to signals before anything can be slow, so that an early
	// SIGTERM ends the server cleanly.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var sick atomic.Bool
	// The standard gRPC health service, answering for the server as a
	// whole ("") and for GRPCService.
	grpcHealth := grpchealth.NewServer()
	setSick := func(v bool) {
		st := healthpb.HealthCheckResponse_SERVING
		if v {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		grpcHealth.SetServingStatus("", st)
		grpcHealth.SetServingStatus(GRPCService, st)
		// Last: once /healthz tells the change, gRPC does too.
		sick.Store(v)
	}
	setSick(false)
	stdinClosed := make(chan struct{})
	go func() {
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			switch cmd, arg, _ := strings.Cut(lines.Text(), " "); cmd {
			case sickCommand:
				setSick(true)
			case wellCommand:
				setSick(false)
			case closeCommand:
				closeListeners(arg)
			}
		}
		close(stdinClosed)
	}()

	if spec == "" {
		return errors.New("nothing to serve")
	}
	for addr := range strings.SplitSeq(addrs, ",") {
		if err := serveOn(spec, addr, &sick, grpcHealth); err != nil {
			return err
		}
	}
	select {
	case <-stop:
	case <-stdinClosed:
	}
	return nil
}

// listeners are the server's listeners by address, for closeCommand.
var (
	listenersMu sync.Mutex
	listeners   = map[string][]io.Closer{}
)

func closeListeners(addr string) {
	listenersMu.Lock()
	defer listenersMu.Unlock()
	for _, c := range listeners[addr] {
		_ = c.Close()
	}
	delete(listeners, addr)
}

// serveOn serves spec's services on one address.
func serveOn(spec, addr string, sick *atomic.Bool, grpcHealth *grpchealth.Server) error {
	for item := range strings.SplitSeq(spec, ",") {
		kind, portText, _ := strings.Cut(item, ":")
		port, err := strconv.Atoi(portText)
		if err != nil {
			return fmt.Errorf("bad service %q: %w", item, err)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		listenersMu.Lock()
		listeners[addr] = append(listeners[addr], ln)
		listenersMu.Unlock()
		switch kind {
		case "http":
			mux := http.NewServeMux()
			mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
				if sick.Load() {
					http.Error(w, "sick", http.StatusServiceUnavailable)
					return
				}
				_, _ = io.WriteString(w, "ok\n")
			})
			// Which host answered, for tests that send traffic through
			// a Service to several hosts.
			mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, addr)
			})
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			go func() { _ = srv.Serve(ln) }()
		case "tcp":
			go acceptAndClose(ln)
		case "grpc":
			srv := grpc.NewServer()
			healthpb.RegisterHealthServer(srv, grpcHealth)
			go func() { _ = srv.Serve(ln) }()
		default:
			return fmt.Errorf("bad service %q: kind is not http, tcp or grpc", item)
		}
	}
	return nil
}

func acceptAndClose(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		_ = conn.Close()
	}
}
