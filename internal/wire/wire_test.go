package wire

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestRoundTripAndEnd(t *testing.T) {
	b := binary.AppendUvarint(nil, 300)
	b = binary.AppendVarint(b, -7)
	b = AppendFieldString(b, "pipeline")
	b = AppendField(b, []byte{1, 2, 3})
	b = append(b, 9)
	r := NewReader(b)
	if u, v, s, f, c := r.Uvarint(), r.Varint(), r.FieldString(), r.Field(), r.Byte(); u != 300 || v != -7 || s != "pipeline" || !bytes.Equal(f, []byte{1, 2, 3}) || c != 9 || r.Bad() {
		t.Fatalf("read %d %d %q %v %d bad=%v", u, v, s, f, c, r.Bad())
	}
	// Past the end: zero values from then on, and Bad.
	if r.Byte() != 0 || !r.Bad() || r.Uvarint() != 0 || r.Field() != nil {
		t.Fatal("a read past the end did not go bad")
	}
}

// A field read keeps its capacity to its length, so appending to it
// leaves the rest of the slice alone.
func TestNextCapsCapacity(t *testing.T) {
	b := AppendField(nil, []byte("ab"))
	b = append(b, 'z')
	f := NewReader(b).Field()
	_ = append(f, 'X')
	if b[len(b)-1] != 'z' {
		t.Fatal("appending to a field overwrote the next byte")
	}
}

// A count larger than the rest could hold is refused before anyone
// allocates for it.
func TestCountBoundedByRest(t *testing.T) {
	b := binary.AppendUvarint(nil, 1<<40)
	b = append(b, 1, 2, 3, 4)
	r := NewReader(b)
	if n := r.Count(2); n != 0 || !r.Bad() {
		t.Fatalf("Count = %d, bad %v", n, r.Bad())
	}
	r = NewReader(append(binary.AppendUvarint(nil, 2), 1, 2, 3, 4))
	if n := r.Count(2); n != 2 || r.Bad() {
		t.Fatalf("Count = %d, bad %v", n, r.Bad())
	}
}
