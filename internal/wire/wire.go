// Package wire reads and writes the varints and length-prefixed fields
// that the inbox's records and journal entries and the runner's stored
// events are made of.
package wire

import "encoding/binary"

// Reader reads fields from a byte slice. After the first field that does
// not fit, Bad reports true and every read gives zero, so a decoder can
// read everything and check once at the end.
type Reader struct {
	b   []byte
	bad bool
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Bad reports whether a read ran past the end (or a count did not fit).
func (r *Reader) Bad() bool { return r.bad }

// Rest returns what has not been read.
func (r *Reader) Rest() []byte { return r.b }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	return uint64(r.advance(int64(v), n))
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	return r.advance(binary.Varint(r.b))
}

func (r *Reader) advance(v int64, n int) int64 {
	if r.bad || n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	b := r.Next(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// Next reads n bytes. The result points into the slice being read, with
// its capacity cut to n, so appending to it cannot overwrite what follows.
func (r *Reader) Next(n uint64) []byte {
	if r.bad || uint64(len(r.b)) < n {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Field reads a length-prefixed field (see AppendField).
func (r *Reader) Field() []byte { return r.Next(r.Uvarint()) }

// FieldString reads a length-prefixed field as a string (a copy).
func (r *Reader) FieldString() string { return string(r.Field()) }

// Count reads a number of items that each take at least least bytes, so
// that a damaged count cannot make a decoder allocate more than the rest
// of the slice could hold.
func (r *Reader) Count(least int) int {
	n := r.Uvarint()
	if r.bad || n > uint64(len(r.b)/least) {
		r.bad = true
		return 0
	}
	return int(n)
}

// AppendField appends v with its length in front.
func AppendField(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// AppendFieldString appends s with its length in front.
func AppendFieldString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
