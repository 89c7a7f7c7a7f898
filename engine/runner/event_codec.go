package runner

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Stored events are written in a compact binary form: decoding them with
// encoding/json was a tenth of the engine's CPU in a CSV import (a map of
// column values per row). The first byte tells the forms apart, so an
// inbox written by an earlier version (JSON, starting with '{') and a
// replayed dead letter (kept as JSON, for people to read) still decode.
const (
	storedBinaryV1 byte = 0x01

	hasData    byte = 1 << 0
	hasRequest byte = 1 << 1
	hasRow     byte = 1 << 2
)

// encodeStored returns the inbox payload of s: the binary form, or JSON
// when a CSV row holds a value that is not text (rows read from files
// only hold text; JSON keeps any other producer's values intact).
func encodeStored(s *storedEvent) ([]byte, error) {
	if s.Row != nil {
		for _, v := range s.Row.Values {
			if _, ok := v.(string); !ok {
				return json.Marshal(s)
			}
		}
	}
	b := make([]byte, 0, 64+len(s.ID)+len(s.AcceptedBy)+len(s.Data))
	b = append(b, storedBinaryV1)
	b = appendString(b, s.ID)
	b = appendString(b, s.AcceptedBy)
	var flags byte
	if len(s.Data) > 0 {
		flags |= hasData
	}
	if s.Request != nil {
		flags |= hasRequest
	}
	if s.Row != nil {
		flags |= hasRow
	}
	b = append(b, flags)
	if flags&hasData != 0 {
		b = appendBytes(b, s.Data)
	}
	if r := s.Request; r != nil {
		b = appendString(b, r.Method)
		b = appendString(b, r.Path)
		b = binary.AppendUvarint(b, uint64(len(r.Params)))
		for k, v := range r.Params {
			b = appendString(appendString(b, k), v)
		}
		b = appendMulti(b, r.Query)
		b = appendMulti(b, r.Headers)
	}
	if r := s.Row; r != nil {
		b = appendString(b, r.File)
		b = binary.AppendUvarint(b, uint64(r.Number))
		b = binary.AppendUvarint(b, uint64(r.Line))
		b = binary.AppendUvarint(b, uint64(len(r.Values)))
		for k, v := range r.Values {
			b = appendString(appendString(b, k), v.(string))
		}
	}
	return b, nil
}

// storedJSON returns payload as JSON, the form dead letters keep (and
// replay reads back). A body that is not JSON (which no route stores) is
// kept as a string; a damaged payload is returned as it is.
func storedJSON(payload []byte) []byte {
	if len(payload) == 0 || payload[0] != storedBinaryV1 {
		return payload
	}
	s, err := decodeStored(payload)
	if err != nil {
		return payload
	}
	if len(s.Data) > 0 && !json.Valid(s.Data) {
		s.Data, _ = json.Marshal(string(s.Data))
	}
	b, err := json.Marshal(s)
	if err != nil {
		return payload
	}
	return b
}

func decodeStored(payload []byte) (*storedEvent, error) {
	if len(payload) > 0 && payload[0] == storedBinaryV1 {
		s, err := decodeStoredBinary(payload[1:])
		if err != nil {
			return nil, fmt.Errorf("the stored event is damaged: %w", err)
		}
		return s, nil
	}
	var s storedEvent
	if err := json.Unmarshal(payload, &s); err != nil {
		return nil, fmt.Errorf("the stored event is damaged: %w", err)
	}
	return &s, nil
}

var errTruncated = errors.New("it ends too early")

// storedReader reads the binary form; the first problem sticks, so the
// decoder checks once at the end.
type storedReader struct {
	b   []byte
	err error
}

func (r *storedReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a number of items, each at least least bytes long, so a
// damaged count cannot make the decoder allocate more than the payload
// could hold.
func (r *storedReader) count(least int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/least) {
		r.err = errTruncated
		return 0
	}
	return int(n)
}

func (r *storedReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errTruncated
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *storedReader) string() string { return string(r.bytes()) }

func (r *storedReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errTruncated
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *storedReader) multi() map[string][]string {
	n := r.count(2)
	if n == 0 {
		return nil
	}
	m := make(map[string][]string, n)
	for range n {
		k := r.string()
		vs := make([]string, r.count(1))
		for i := range vs {
			vs[i] = r.string()
		}
		m[k] = vs
	}
	return m
}

func decodeStoredBinary(b []byte) (*storedEvent, error) {
	r := &storedReader{b: b}
	s := &storedEvent{ID: r.string(), AcceptedBy: r.string()}
	flags := r.byte()
	if unknown := flags &^ (hasData | hasRequest | hasRow); unknown != 0 {
		return nil, fmt.Errorf("it has parts this version does not know (flags %#x)", unknown)
	}
	if flags&hasData != 0 {
		// The body points into the payload, which the inbox shares but
		// nobody writes to once stored; it is only ever read (decoded).
		s.Data = r.bytes()
	}
	if flags&hasRequest != 0 {
		req := &storedRequest{Method: r.string(), Path: r.string()}
		if n := r.count(2); n > 0 {
			req.Params = make(map[string]string, n)
			for range n {
				k := r.string()
				req.Params[k] = r.string()
			}
		}
		req.Query = url.Values(r.multi())
		req.Headers = http.Header(r.multi())
		s.Request = req
	}
	if flags&hasRow != 0 {
		row := &storedRow{File: r.string(), Number: int(r.uvarint()), Line: int(r.uvarint())}
		n := r.count(2)
		row.Values = make(map[string]any, n)
		for range n {
			k := r.string()
			row.Values[k] = r.string()
		}
		s.Row = row
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes are left over", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// appendString writes s with each invalid UTF-8 byte replaced by U+FFFD,
// as the JSON form did: headers, query values and CSV cells reach
// templates as text either way.
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		var valid strings.Builder
		for _, r := range s {
			valid.WriteRune(r) // an invalid byte comes as utf8.RuneError
		}
		s = valid.String()
	}
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendMulti(b []byte, m map[string][]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for k, vs := range m {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return b
}
