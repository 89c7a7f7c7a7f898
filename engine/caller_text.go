package engine

import (
	"errors"
	"fmt"
	"strings"

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
// API key (SessionM Core's) that no masker knows, and without the words of
// the peer's answer, which can quote that URL. The engine's log has the
// whole error. Secrets are not masked here.
func CallerText(err error) string {
	text := err.Error()
	var answer *AnswerError
	var noAnswer *NoAnswerError
	var cut *CutAnswerError
	switch {
	case errors.As(err, &answer):
		return strings.Replace(text, answer.Error(), answer.Brief(), 1)
	case errors.As(err, &noAnswer) && noAnswer.Conn != "":
		return strings.Replace(text, noAnswer.Error(), "no answer from "+noAnswer.Conn+": "+noAnswer.Err.Error(), 1)
	case errors.As(err, &noAnswer):
		return strings.Replace(text, noAnswer.Error(), "no answer: "+noAnswer.Err.Error(), 1)
	case errors.As(err, &cut):
		return strings.Replace(text, cut.Error(), cut.Detail(), 1)
	}
	return text
}
