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
