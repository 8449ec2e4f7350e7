package server

import (
	"net"
	"os"
	"strings"
)

// Listen listens on addr: HOST:PORT (TCP), or unix:PATH for a Unix
// socket (behind a proxy), replacing a socket an earlier run left at
// PATH. Closing the listener removes the socket.
func Listen(addr string) (net.Listener, error) {
	p, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	os.Remove(p) // a socket left by an earlier run
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}

// Where says where ln serves, for people: http(s)://HOST:PORT, or
// unix:PATH for a Unix socket.
func Where(ln net.Listener, tls bool) string {
	if ln.Addr().Network() == "unix" {
		return "unix:" + ln.Addr().String()
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String()
}

// Private reports whether ln is reachable only from this machine: a
// loopback address, or a Unix socket (a proxy in front of it decides who
// reaches it).
func Private(ln net.Listener) bool {
	switch a := ln.Addr().(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}
