// Package connlimit caps how many connections a listener holds open at
// once. Each connection costs memory before any handler runs (net/http
// reads a request's headers into memory, up to its MaxHeaderBytes), so
// without a cap anyone who can open sockets decides how much memory the
// engine uses.
package connlimit

import (
	"net"
	"net/http"
	"sync"
)

// Listener holds at most max connections open at once. A connection that
// comes at the cap takes the place of one that sits idle between requests
// (a kept-alive one, which its client opens again when it needs it), or,
// with none idle, waits for one to close, unserved; those after it wait in
// the kernel's backlog. Give ConnState to the http.Server, or no
// connection is ever known to be idle.
type Listener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	full      func()

	mu      sync.Mutex
	idle    map[net.Conn]struct{}
	waiting bool // an accepted connection waits for a slot
}

// New returns ln capped at max connections. full, when not nil, is called
// each time a connection has to wait with no idle one to close (the
// caller rate-limits its own report).
func New(ln net.Listener, max int, full func()) *Listener {
	return &Listener{Listener: ln, slots: make(chan struct{}, max), closed: make(chan struct{}), full: full, idle: map[net.Conn]struct{}{}}
}

// ConnState is the http.Server's ConnState hook: it tells which
// connections are idle, and closes one that becomes idle while a new
// connection waits (one between two requests at the cap's moment was not
// idle yet).
func (l *Listener) ConnState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	if state != http.StateIdle {
		delete(l.idle, c)
		l.mu.Unlock()
		return
	}
	if l.waiting {
		l.waiting = false
		l.mu.Unlock()
		c.Close()
		return
	}
	l.idle[c] = struct{}{}
	l.mu.Unlock()
}

// Accept takes the next connection from the kernel first, so that room is
// made only for a connection that came (net/http calls Accept again at
// once).
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.mu.Lock()
		var victim net.Conn
		for idle := range l.idle {
			victim = idle
			delete(l.idle, idle)
			break
		}
		l.waiting = victim == nil
		l.mu.Unlock()
		if victim != nil {
			victim.Close() // frees its slot at once
		} else if l.full != nil {
			l.full()
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			c.Close()
			return nil, net.ErrClosed
		}
		l.mu.Lock()
		l.waiting = false
		l.mu.Unlock()
	}
	return &conn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type conn struct {
	net.Conn
	releaseOnce sync.Once
	release     func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.releaseOnce.Do(c.release)
	return err
}
