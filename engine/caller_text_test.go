package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/loyalty-connector/engine/engine/spec"
)

// A synchronous pipeline's caller hears the step, the connection, the
// status and a plain error code, never the lookup's URL or the peer's
// words, which can quote it (SessionM Core's API key is in its path).
func TestCallerText(t *testing.T) {
	quoted := errors.New("sessionm answered HTTP 404: user_not_found: no user for GET /priv/v1/apps/core-key/users/x")
	// as net/http gives it: the peer's address in it
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 3, 7), Port: 8443}, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a code under an error status",
			&AnswerError{Conn: "core", Status: 404, Err: spec.NotFound(spec.Coded("user_not_found", quoted))},
			"step u: core answered HTTP 404: user_not_found"},
		{"a code under 200",
			&AnswerError{Conn: "core", Status: 200, Err: spec.Coded("validation", quoted)},
			"step u: core answered status error: validation"},
		{"a code that is not a plain word",
			&AnswerError{Conn: "core", Status: 400, Err: spec.Coded("see /priv/v1/apps/core-key", quoted)},
			"step u: core answered HTTP 400"},
		{"no code",
			&AnswerError{Conn: "braze", Status: 400, Err: quoted},
			"step u: braze answered HTTP 400"},
		{"not JSON",
			&AnswerError{Conn: "connect", Status: 200, Unexpected: "with a body that is not JSON", Err: spec.Retryable(errors.New("connect answered HTTP 200 with a body that is not JSON, where get_user answers JSON: <html>/priv/v1/apps/core-key</html>"))},
			"step u: connect answered HTTP 200 with a body that is not JSON"},
		{"no answer",
			&NoAnswerError{Method: "GET", URL: "http://h/priv/v1/apps/core-key/users/x", Err: refused},
			"step u: no answer: connection refused"},
		// the kind of failure, not the address the network error quotes
		{"no answer, from a step's connection",
			&NoAnswerError{Method: "GET", URL: "http://h/priv/v1/apps/core-key/users/x", Err: refused, Conn: "core"},
			"step u: no answer from core: connection refused"},
		{"a timeout",
			&NoAnswerError{Method: "GET", URL: "http://h/x", Err: fmt.Errorf("reading: %w", context.DeadlineExceeded), Conn: "core"},
			"step u: no answer from core: timed out"},
		{"the engine's own words",
			&NoAnswerError{Method: "GET", URL: "http://h/x", Err: ownWords{errors.New("no answer within 100ms, the connection's timeout")}, Conn: "core"},
			"step u: no answer from core: no answer within 100ms, the connection's timeout"},
		{"a host name that does not resolve",
			&NoAnswerError{Method: "GET", URL: "http://h/x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "internal-core.corp"}}, Conn: "core"},
			"step u: no answer from core: the peer's host name did not resolve"},
		{"something else",
			&NoAnswerError{Method: "GET", URL: "http://h/x", Err: errors.New("proxyconnect tcp: dial 10.0.3.7:3128: odd"), Conn: "core"},
			"step u: no answer from core: the connection failed"},
		{"a cut answer, from a step's connection",
			&CutAnswerError{Method: "GET", URL: "http://h/priv/v1/apps/core-key/users/x", Status: 200, Err: errors.New("its body was cut"), Conn: "core"},
			"step u: core answered HTTP 200, but its body was cut"},
		{"the engine's own error", errors.New("int() cannot read \"x\""), `step u: int() cannot read "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CallerText(fmt.Errorf("step u: %w", tc.err)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
