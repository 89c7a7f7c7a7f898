package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/loyalty-connector/engine/engine/spec"
)

// AnswerError is a lookup whose peer answered, but not with what the step
// needs: an error (Err, the connection's reading of the answer) or, from
// an endpoint that answers JSON, a body that is not JSON or not what the
// endpoint answers. Error is the
// whole story, for the log, dead letters and dry-run; Brief is what an
// outside caller is told (CallerText).
type AnswerError struct {
	Conn   string
	Status int
	// Unexpected says what is wrong with a 2xx that is not what the
	// endpoint answers ("with a body that is not JSON"); "" for an error.
	Unexpected string
	Err        error
}

func (e *AnswerError) Error() string { return e.Err.Error() }
func (e *AnswerError) Unwrap() error { return e.Err }

// Brief is the answer without the peer's own words: its status, and its
// error code when it gave a plain one.
func (e *AnswerError) Brief() string {
	code := spec.CodeOf(e.Err)
	switch {
	case e.Unexpected != "":
		return fmt.Sprintf("%s answered HTTP %d %s", e.Conn, e.Status, e.Unexpected)
	case code != "" && e.Status >= 200 && e.Status < 300:
		return fmt.Sprintf("%s answered status error: %s", e.Conn, code)
	case code != "":
		return fmt.Sprintf("%s answered HTTP %d: %s", e.Conn, e.Status, code)
	}
	return fmt.Sprintf("%s answered HTTP %d", e.Conn, e.Status)
}

// CallerText is err as a synchronous pipeline's caller (Braze's Connected
// Content) is told it: without the lookup's URL, whose path can hold an
// API key (SessionM Core's) that no masker knows, without the words of
// the peer's answer, which can quote that URL, and without the peer's
// address when it did not answer. The engine's log has the whole error.
// Secrets are not masked here.
func CallerText(err error) string {
	text := err.Error()
	var answer *AnswerError
	var noAnswer *NoAnswerError
	var cut *CutAnswerError
	switch {
	case errors.As(err, &answer):
		return strings.Replace(text, answer.Error(), answer.Brief(), 1)
	case errors.As(err, &noAnswer) && noAnswer.Conn != "":
		return strings.Replace(text, noAnswer.Error(), "no answer from "+noAnswer.Conn+": "+whyNoAnswer(noAnswer.Err), 1)
	case errors.As(err, &noAnswer):
		return strings.Replace(text, noAnswer.Error(), "no answer: "+whyNoAnswer(noAnswer.Err), 1)
	case errors.As(err, &cut):
		return strings.Replace(text, cut.Error(), cut.Detail(), 1)
	}
	return text
}

// whyNoAnswer names the kind of failure of a request that got no answer,
// without the address or host name the network error quotes ("dial tcp
// 10.0.3.7:8443: connect: connection refused" told an outside caller
// where the peer lives: a security review).
func whyNoAnswer(err error) string {
	var dns *net.DNSError
	var netErr net.Error
	var own ownWords
	switch {
	case errors.As(err, &own):
		return own.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.As(err, &dns):
		return "the peer's host name did not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed before an answer"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "the peer cannot be reached"
	case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:"):
		return "the TLS handshake failed"
	}
	return "the connection failed"
}
