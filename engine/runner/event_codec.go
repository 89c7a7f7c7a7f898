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

	"github.com/loyalty-connector/engine/internal/wire"
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
// only hold text; JSON keeps any other producer's values intact) or when
// it carries objects Braze already took (only dead letters do).
func encodeStored(s *storedEvent) ([]byte, error) {
	if len(s.Delivered) > 0 {
		return json.Marshal(s)
	}
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
		b = wire.AppendField(b, s.Data)
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

// withID is event, a stored event as JSON, with id as its id; event as it
// is if it cannot be read.
func withID(event []byte, id string) []byte {
	var s storedEvent
	if json.Unmarshal(event, &s) != nil {
		return event
	}
	s.ID = id
	if b, err := json.Marshal(&s); err == nil {
		return b
	}
	return event
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

// readMulti reads what appendMulti wrote.
func readMulti(r *wire.Reader) map[string][]string {
	n := r.Count(2)
	if n == 0 {
		return nil
	}
	m := make(map[string][]string, n)
	for range n {
		k := r.FieldString()
		vs := make([]string, r.Count(1))
		for i := range vs {
			vs[i] = r.FieldString()
		}
		m[k] = vs
	}
	return m
}

func decodeStoredBinary(b []byte) (*storedEvent, error) {
	r := wire.NewReader(b)
	s := &storedEvent{ID: r.FieldString(), AcceptedBy: r.FieldString()}
	flags := r.Byte()
	if unknown := flags &^ (hasData | hasRequest | hasRow); unknown != 0 {
		return nil, fmt.Errorf("it has parts this version does not know (flags %#x): a newer engine stored it; run that version on this --data to deliver it", unknown)
	}
	if flags&hasData != 0 {
		// The body points into the payload, which the inbox shares but
		// nobody writes to once stored; it is only ever read (decoded).
		s.Data = r.Field()
	}
	if flags&hasRequest != 0 {
		req := &storedRequest{Method: r.FieldString(), Path: r.FieldString()}
		if n := r.Count(2); n > 0 {
			req.Params = make(map[string]string, n)
			for range n {
				k := r.FieldString()
				req.Params[k] = r.FieldString()
			}
		}
		req.Query = url.Values(readMulti(r))
		req.Headers = http.Header(readMulti(r))
		s.Request = req
	}
	if flags&hasRow != 0 {
		row := &storedRow{File: r.FieldString(), Number: int(r.Uvarint()), Line: int(r.Uvarint())}
		n := r.Count(2)
		row.Values = make(map[string]any, n)
		for range n {
			k := r.FieldString()
			row.Values[k] = r.FieldString()
		}
		s.Row = row
	}
	if r.Bad() {
		return nil, errTruncated
	}
	if rest := len(r.Rest()); rest > 0 {
		return nil, fmt.Errorf("%d bytes are left over", rest)
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
	return wire.AppendFieldString(b, s)
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
