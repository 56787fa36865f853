package health

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// backend is a loopback HTTP server that counts what it is asked.
type backend struct {
	srv      *httptest.Server
	conns    atomic.Int64 // connections opened
	okHits   atomic.Int64 // requests to /ok
	bigDone  chan int64   // bytes written by /big, sent when it gives up
	mu       sync.Mutex
	lastHost string
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{bigDone: make(chan int64, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		b.okHits.Add(1)
		b.mu.Lock()
		b.lastHost = r.Host
		b.mu.Unlock()
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		// An endless body: the probe must stop reading on its own.
		chunk := []byte(strings.Repeat("x", 32<<10))
		var n int64
		for {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				b.bigDone <- n
				return
			}
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	b.srv = httptest.NewUnstartedServer(mux)
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) port() int { return b.srv.Listener.Addr().(*net.TCPAddr).Port }

func TestHTTPCheck(t *testing.T) {
	b := newBackend(t)
	c := &Checker{allowForbidden: true}
	only2xx := []StatusRange{{Min: 200, Max: 299}}
	tests := []struct {
		name     string
		path     string
		statuses []StatusRange
		timeout  time.Duration
		wantErr  error
	}{
		{name: "200 passes", path: "/ok"},
		{name: "500 fails", path: "/fail", wantErr: ErrUnexpectedStatus},
		{name: "500 passes when expected", path: "/fail", statuses: []StatusRange{{Min: 500, Max: 599}}},
		{name: "single status range", path: "/ok", statuses: []StatusRange{{Min: 200}}},
		{name: "404 fails", path: "/nothing-here", wantErr: ErrUnexpectedStatus},
		{name: "302 fails outside range, not followed", path: "/redirect", statuses: only2xx, wantErr: ErrUnexpectedStatus},
		{name: "302 passes in default range, not followed", path: "/redirect"},
		{name: "endless body is bounded", path: "/big"},
		{name: "timeout", path: "/slow", timeout: 200 * time.Millisecond, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			okBefore := b.okHits.Load()
			spec := ProbeSpec{Kind: ProbeHTTP, Port: b.port(), Path: tt.path, Statuses: tt.statuses, Timeout: tt.timeout}
			err := c.Check(t.Context(), "127.0.0.1", spec)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Check(%s) = %v, want %v", tt.path, err, tt.wantErr)
			}
			if tt.path == "/redirect" && b.okHits.Load() != okBefore {
				t.Error("the redirect's target was requested")
			}
		})
	}

	t.Run("endless body connection closed", func(t *testing.T) {
		// The handler ends only when its writes fail: the probe closed the
		// connection rather than reading on.
		select {
		case n := <-b.bigDone:
			t.Logf("the server wrote %d bytes before the probe closed", n)
		case <-time.After(10 * time.Second):
			t.Fatal("the server of the endless body is still writing")
		}
	})
}

func TestHTTPCheckHostHeaderAndPath(t *testing.T) {
	b := newBackend(t)
	c := &Checker{allowForbidden: true}
	tests := []struct{ host, want string }{
		{host: "", want: "127.0.0.1:" + strconv.Itoa(b.port())},
		{host: "api.example.com", want: "api.example.com"},
	}
	for _, tt := range tests {
		spec := ProbeSpec{Kind: ProbeHTTP, Port: b.port(), Path: "/ok?probe=1", Host: tt.host}
		if err := c.Check(t.Context(), "127.0.0.1", spec); err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		got := b.lastHost
		b.mu.Unlock()
		if got != tt.want {
			t.Errorf("Host header %q, want %q", got, tt.want)
		}
	}
}

func TestHTTPCheckOpensAConnectionPerProbe(t *testing.T) {
	b := newBackend(t)
	c := &Checker{allowForbidden: true}
	spec := ProbeSpec{Kind: ProbeHTTP, Port: b.port(), Path: "/ok"}
	for range 3 {
		if err := c.Check(t.Context(), "127.0.0.1", spec); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.conns.Load(); got != 3 {
		t.Errorf("3 probes opened %d connections, want 3: every probe must dial, and so be guarded", got)
	}
}

func TestHTTPCheckUsesNoProxy(t *testing.T) {
	b := newBackend(t)
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	var proxied atomic.Int64
	go func() {
		for {
			conn, err := proxy.Accept()
			if err != nil {
				return
			}
			proxied.Add(1)
			_ = conn.Close()
		}
	}()
	for _, v := range []string{"HTTP_PROXY", "http_proxy", "ALL_PROXY"} {
		t.Setenv(v, "http://"+proxy.Addr().String())
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	c := &Checker{allowForbidden: true}
	if err := c.Check(t.Context(), "127.0.0.1", ProbeSpec{Kind: ProbeHTTP, Port: b.port(), Path: "/ok"}); err != nil {
		t.Fatal(err)
	}
	if b.okHits.Load() != 1 || proxied.Load() != 0 {
		t.Errorf("the backend was asked %d times and the proxy of the environment %d; probes must dial their target", b.okHits.Load(), proxied.Load())
	}
}

// rawBackend answers every connection on loopback with reply, whatever
// was asked, and closes it.
func rawBackend(t *testing.T, reply func(w io.Writer)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = bufio.NewReader(conn).ReadString('\n') // the request line
				reply(conn)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestHTTPCheckOfUnusualAnswers(t *testing.T) {
	c := &Checker{allowForbidden: true}
	tests := []struct {
		name    string
		reply   func(w io.Writer)
		wantErr bool
	}{
		{name: "interim answers before the final one", reply: func(w io.Writer) {
			_, _ = io.WriteString(w, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
		}},
		{name: "no Content-Length, body to the close", reply: func(w io.Writer) {
			_, _ = io.WriteString(w, "HTTP/1.0 200 OK\r\n\r\nfine")
		}},
		{name: "endless interim answers", wantErr: true, reply: func(w io.Writer) {
			for range 100 {
				if _, err := io.WriteString(w, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
					return
				}
			}
		}},
		{name: "endless headers", wantErr: true, reply: func(w io.Writer) {
			_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\n")
			for {
				if _, err := io.WriteString(w, "X-Filler: "+strings.Repeat("x", 1000)+"\r\n"); err != nil {
					return
				}
			}
		}},
		{name: "not HTTP", wantErr: true, reply: func(w io.Writer) { _, _ = io.WriteString(w, "SSH-2.0-OpenSSH_9.2\r\n") }},
		{name: "closed at once", wantErr: true, reply: func(io.Writer) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := rawBackend(t, tt.reply)
			err := c.Check(t.Context(), "127.0.0.1", ProbeSpec{Kind: ProbeHTTP, Port: port, Timeout: 5 * time.Second})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Check = %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil && errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Check = %v: it waited for its timeout rather than judging the answer", err)
			}
		})
	}
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	// A port that refuses: listen, note the port, close.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	c := &Checker{allowForbidden: true}
	open := ln.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name    string
		spec    ProbeSpec
		wantErr error
	}{
		{name: "open port passes", spec: ProbeSpec{Kind: ProbeTCP, Port: open}},
		{name: "closed port fails", spec: ProbeSpec{Kind: ProbeTCP, Port: closedPort}, wantErr: syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(t.Context(), "127.0.0.1", tt.spec)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Check = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestCheckRejectsBadSpecs(t *testing.T) {
	var c Checker
	for _, spec := range []ProbeSpec{
		{Kind: ProbeTCP, Port: 0},
		{Kind: ProbeHTTP, Port: 70000},
		{Kind: "udp", Port: 53},
		{Port: 80},
	} {
		if err := c.Check(t.Context(), "10.0.0.1", spec); err == nil {
			t.Errorf("Check(%+v) passed", spec)
		}
	}
}
