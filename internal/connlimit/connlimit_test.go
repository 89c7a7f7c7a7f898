package connlimit

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// capped listens on loopback, capped at max connections, and counts the
// times Accept found the listener full.
func capped(t *testing.T, max int) (ln *Listener, inner net.Listener, full *atomic.Int32) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	full = new(atomic.Int32)
	return New(inner, max, func() { full.Add(1) }), inner, full
}

func TestAcceptWaitsAtTheCapUntilAConnectionCloses(t *testing.T) {
	ln, inner, waits := capped(t, 2)
	defer ln.Close()

	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted with two open and a cap of two")
	case <-time.After(300 * time.Millisecond):
	}
	if waits.Load() != 1 {
		t.Errorf("the listener reported itself full %d times while one Accept waited; want 1", waits.Load())
	}
	first.Close()
	first.Close() // a second Close must not free a second slot
	select {
	case third := <-accepted:
		defer third.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the third connection was not accepted after one of the two closed")
	}
	// Two open again (second, third): a fourth must wait, which it would
	// not had the double Close freed two slots.
	fourth, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer fourth.Close()
	select {
	case <-accepted:
		t.Fatal("a fourth connection was accepted: closing one connection twice freed two slots")
	case <-time.After(300 * time.Millisecond):
	}
	second.Close()
}

func TestCloseEndsAnAcceptWaitingAtTheCap(t *testing.T) {
	ln, inner, _ := capped(t, 1)
	for range 2 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	held, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	done := make(chan error, 1)
	go func() {
		_, err := ln.Accept() // the second connection, waiting at the cap
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept at the cap after Close returned %v; want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept waiting at the cap did not return after the listener was closed")
	}
}

// At the cap, a connection kept alive between requests gives way to a new
// one: idle connections are cheap for their clients to open again, and
// holding them would make new callers wait up to the idle timeout.
func TestAnIdleConnectionGivesWayAtTheCap(t *testing.T) {
	ln, inner, waits := capped(t, 2)
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ConnState: ln.ConnState}
	go srv.Serve(ln)
	defer srv.Close()

	ask := func(c net.Conn) error {
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "HTTP/1.1 200") {
			err = fmt.Errorf("answered %q", line)
		}
		return err
	}
	idle := func() int {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return len(ln.idle)
	}
	var conns []net.Conn
	for i := range 3 {
		if i == 2 {
			// The server marks a connection idle just after its answer
			// is written: on a busy machine the client can be faster.
			for deadline := time.Now().Add(10 * time.Second); idle() < 2 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := ask(c); err != nil {
			t.Fatalf("connection %d of 3 (cap 2, the others idle): %v", i+1, err)
		}
		conns = append(conns, c)
	}
	if n := waits.Load(); n != 0 {
		t.Errorf("the listener reported itself full %d times with idle connections to close", n)
	}
	// One of the first two was closed to make room.
	closed := 0
	for _, c := range conns[:2] {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d of the two idle connections were closed for the third; want 1", closed)
	}
}
