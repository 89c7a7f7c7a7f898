package main

// The webhook listener's own limits, on the built binary: headers are
// read into memory (and kept with the event) before any handler or auth
// check runs, so their size and the connections reading them are capped.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestWebhookListenerCapsHeadersAndConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	h := newCrashHarness(t, 10)
	h.flags = []string{"--max-header-size", "1", "--max-connections", "2"}
	e := h.startEngine(0)
	defer h.stopEngine(e)
	http.DefaultClient.CloseIdleConnections() // startEngine's, which holds a slot

	addr := strings.TrimPrefix(e.base, "http://")
	// send writes text on c and reads the status line of the answer
	// within wait ("" if none came).
	send := func(c net.Conn, text string, wait time.Duration) string {
		t.Helper()
		fmt.Fprint(c, text)
		c.SetReadDeadline(time.Now().Add(wait))
		defer c.SetReadDeadline(time.Time{})
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return ""
		}
		return strings.TrimSpace(line)
	}
	const requestStart = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
	ask := func(c net.Conn, extraHeader string, wait time.Duration) string {
		t.Helper()
		return send(c, requestStart+extraHeader+"\r\n", wait)
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// net/http reads up to 4 KiB past the limit (its buffer): 8 KiB of
	// headers are over 1 KiB by any count, 200 bytes under.
	if got := ask(dial(), "X-Big: "+strings.Repeat("a", 8<<10)+"\r\n", 10*time.Second); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("8 KiB of headers with --max-header-size 1: %q, want 431", got)
	}
	small := "X-Small: " + strings.Repeat("a", 200) + "\r\n" // under 1 KiB

	// Two connections still sending their headers fill --max-connections
	// 2: a third waits, unserved.
	first, second := dial(), dial()
	for _, c := range []net.Conn{first, second} {
		fmt.Fprint(c, requestStart)
	}
	time.Sleep(300 * time.Millisecond)
	third := dial()
	if got := ask(third, small, time.Second); got != "" {
		t.Fatalf("a third connection was answered (%q) while two were open under --max-connections 2", got)
	}
	if !e.stderr.waitFor("new ones wait until one closes", e.exited, 5*time.Second) {
		t.Errorf("no warning that the listener was full; log:\n%s", e.stderr.String())
	}
	// The first ends its request; once answered it is idle, kept alive,
	// and gives way to the third.
	if got := send(first, "\r\n", 10*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Fatalf("the first connection: %q, want 200", got)
	}
	if got := send(third, "", 10*time.Second); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("the third connection, once the first was idle: %q, want 200", got)
	}
}
