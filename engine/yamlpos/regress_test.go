package yamlpos

import (
	"reflect"
	"testing"
)

func TestMergeListKeyNodeIndexAndInfinity(t *testing.T) {
	src := "a: &a {x: 1}\nb: &b {y: 2}\nc: {<<: [*a, *b], z: 3}\nl: [p, q]\nf: .inf\n"
	doc, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	v := ToValue(doc.Root).(map[string]any)
	want := map[string]any{"x": "1", "y": "2", "z": "3"}
	got := map[string]any{}
	for k, e := range v["c"].(map[string]any) {
		got[k] = string(e.(interface{ String() string }).String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merge of a list: %v, want %v", got, want)
	}
	if n := doc.KeyNode(Path{"l", 1}); n.Value != "q" || n.Line != 4 || n.Column != 8 {
		t.Errorf("KeyNode(l[1]) = %q at %d:%d, want q at 4:8", n.Value, n.Line, n.Column)
	}
	if f := v["f"]; f != ".inf" {
		t.Errorf(".inf became %#v, want the text .inf", f)
	}
}
