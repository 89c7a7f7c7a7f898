package spec

// NotSentError is what ResponseError returns for an answer that reports
// success but says the peer will not act on the request (Braze: a trigger
// for a paused or archived Canvas, braze.md §2). Its events were not
// delivered, and sending them again changes nothing until someone acts on
// the peer's side, so the engine keeps them apart, to be replayed then.
type NotSentError struct {
	Msg string // for the user, with the peer's own words
}

func (e *NotSentError) Error() string { return e.Msg }

// WholeRequestError is what ResponseError returns for a refusal that
// holds for the request whatever items it carries (a bad key, an unknown
// campaign). An engine that merged the items of many events into the
// request gives them all up with it, rather than sending each alone to be
// refused the same way.
type WholeRequestError struct {
	Err error
}

func (e *WholeRequestError) Error() string { return e.Err.Error() }
func (e *WholeRequestError) Unwrap() error { return e.Err }
