package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// requestTimeout bounds one webhook's round trip, as a sender's client
// timeout would.
const requestTimeout = 30 * time.Second

// sender is one keep-alive connection that speaks HTTP/1.1 itself. The
// load generator shares the two cores with the engine and the emulators it
// measures, so every microsecond it spends is taken from them: net/http's
// client costs about twice as much per request (a request object, a
// context, two goroutines and channel handovers per round trip). Answers
// are still parsed by http.ReadResponse, so a malformed one is an error.
type sender struct {
	host   string // host:port to dial and to send as Host
	fixed  []byte // the header lines every request of the scenario carries
	conn   net.Conn
	reader *bufio.Reader
	buf    []byte
}

func newSender(base string, header http.Header) (*sender, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("the engine's address %q is not http://host:port", base)
	}
	var fixed []byte
	fixed = append(fixed, "Host: "+u.Host+"\r\n"...)
	names := make([]string, 0, len(header))
	for name := range header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range header[name] {
			if strings.ContainsAny(name+v, "\r\n") {
				return nil, fmt.Errorf("the header %s of the scenario's webhooks has a line break (from an --env-file?); it would break every request", name)
			}
			fixed = append(fixed, name+": "+v+"\r\n"...)
		}
	}
	return &sender{host: u.Host, fixed: fixed}, nil
}

// post sends one request and reads the whole answer, returning its
// status. A request that fails closes the connection; the next one dials
// again.
func (s *sender) post(path, idempotencyKey string, body []byte) (int, error) {
	if path == "" || strings.ContainsAny(path, " \r\n") || strings.ContainsAny(idempotencyKey, "\r\n") {
		return 0, fmt.Errorf("cannot send the path %q with the idempotency key %q: a path needs escaping and neither may break a line", path, idempotencyKey)
	}
	if s.conn == nil {
		conn, err := net.DialTimeout("tcp", s.host, requestTimeout)
		if err != nil {
			return 0, err
		}
		s.conn, s.reader = conn, bufio.NewReaderSize(conn, 4096)
	}
	b := append(s.buf[:0], "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\n"...)
	b = append(b, s.fixed...)
	if idempotencyKey != "" {
		b = append(b, "Idempotency-Key: "...)
		b = append(b, idempotencyKey...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	s.buf = b
	status, err := s.roundTrip(b)
	if err != nil {
		s.close()
	}
	return status, err
}

func (s *sender) roundTrip(req []byte) (int, error) {
	if err := s.conn.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return 0, err
	}
	if _, err := s.conn.Write(req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(s.reader, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.Close {
		s.close()
	}
	return resp.StatusCode, nil
}

func (s *sender) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn, s.reader = nil, nil
	}
}
