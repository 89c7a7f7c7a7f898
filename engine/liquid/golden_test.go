package liquid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/jsonval"
)

// The golden-liquid conformance suite (jg-rp/golden-liquid, MIT), as the
// shared runner in ../shared/liquid-golden scores it: a case passes when
// the output is one of its results, or, for an invalid case, when parsing
// or rendering fails; a panic never passes. A copy of the suite, with its
// licence and source, is in testdata, so the test runs wherever the
// project is checked out; GOLDEN_LIQUID names another copy.
const goldenDefault = "testdata/golden-liquid/golden_liquid.json"

// The test fails below 90% of the whole suite and 95% of the Braze subset
// (the README gives the figures measured), or on any panic or output that
// changes from one render to the next.
const (
	goldenFloorAll   = 0.90
	goldenFloorBraze = 0.95
)

// notInBraze are the golden tags of what Braze does not document (the
// runner README's -skip-tags list): the Braze subset leaves those cases out.
var notInBraze = strings.Split("base64_decode filter,base64_url_safe_decode filter,base64_url_safe_encode filter,escape_once filter,find filter,find_index filter,has filter,lstrip filter,reject filter,remove_last filter,replace_last filter,rstrip filter,sum filter,url_decode filter,cycle tag,decrement tag,doc tag,ifchanged tag,include tag,increment tag,# tag,render tag,tablerow tag", ",")

type goldenCase struct {
	Name      string            `json:"name"`
	Template  string            `json:"template"`
	Data      json.RawMessage   `json:"data"`
	Templates map[string]string `json:"templates"`
	Result    *string           `json:"result"`
	Results   []string          `json:"results"`
	Invalid   bool              `json:"invalid"`
	Tags      []string          `json:"tags"`
}

func TestGoldenLiquid(t *testing.T) {
	path := os.Getenv("GOLDEN_LIQUID")
	if path == "" {
		path = goldenDefault
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests []goldenCase `json:"tests"`
	}
	if err := json.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	prevLocal := time.Local
	time.Local = time.UTC // cases tagged utc expect it; the runner does the same
	defer func() { time.Local = prevLocal }()

	var all, braze, allPass, brazePass int
	failures := map[string][]string{}
	for _, c := range suite.Tests {
		status := judgeGolden(&c)
		inBraze := !slices.ContainsFunc(c.Tags, func(tag string) bool { return slices.Contains(notInBraze, tag) })
		all++
		if inBraze {
			braze++
		}
		if status == "pass" {
			allPass++
			if inBraze {
				brazePass++
			}
			continue
		}
		failures[status] = append(failures[status], c.Name)
		if status == "panic" || status == "nondeterministic" {
			t.Errorf("%s: %s", status, c.Name)
		}
	}
	t.Logf("golden-liquid: %d/%d passed (%.1f%%); Braze subset %d/%d (%.1f%%)",
		allPass, all, 100*float64(allPass)/float64(all), brazePass, braze, 100*float64(brazePass)/float64(braze))
	statuses := make([]string, 0, len(failures))
	for s := range failures {
		statuses = append(statuses, s)
	}
	sort.Strings(statuses)
	for _, s := range statuses {
		t.Logf("%s: %d, e.g. %s", s, len(failures[s]), strings.Join(failures[s][:min(3, len(failures[s]))], " | "))
	}
	if float64(allPass) < goldenFloorAll*float64(all) || float64(brazePass) < goldenFloorBraze*float64(braze) {
		t.Errorf("below the floor: %d/%d of the whole suite (floor %.0f%%), %d/%d of the Braze subset (floor %.0f%%)",
			allPass, all, 100*goldenFloorAll, brazePass, braze, 100*goldenFloorBraze)
	}
}

// judgeGolden renders one case, several times when its data has objects
// whose member order could leak into the output, and says how it went.
func judgeGolden(c *goldenCase) string {
	first := renderGolden(c)
	rendered := first.status == "pass" || first.status == "wrong output" || first.status == "error"
	if !rendered || !bytes.Contains(c.Data, []byte(":")) { // no object in the data: nothing to reorder
		return first.status
	}
	for range 7 {
		if again := renderGolden(c); again != first {
			return "nondeterministic"
		}
	}
	return first.status
}

type goldenOutcome struct{ status, out string }

func renderGolden(c *goldenCase) (o goldenOutcome) {
	data := map[string]any{}
	if len(c.Data) > 0 {
		v, err := jsonval.DecodeObject(c.Data)
		if err != nil {
			return goldenOutcome{status: "harness error", out: err.Error()}
		}
		data = v
	}
	done := make(chan goldenOutcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- goldenOutcome{status: "panic", out: fmt.Sprint(r)}
			}
		}()
		var opts []EngineOption
		if c.Templates != nil {
			opts = append(opts, WithPartials(c.Templates))
		}
		out, err := renderGoldenCase(c.Template, data, opts)
		done <- score(c, out, err)
	}()
	select {
	case o = <-done:
		return o
	case <-time.After(5 * time.Second):
		return goldenOutcome{status: "timeout"}
	}
}

func renderGoldenCase(src string, data map[string]any, opts []EngineOption) (string, error) {
	tpl, problems := NewEngine(opts...).Parse(src, Options{})
	if len(problems) > 0 {
		return "", fmt.Errorf("%s", problems[0].Message)
	}
	return tpl.Render(data)
}

func score(c *goldenCase, out string, err error) goldenOutcome {
	if c.Invalid {
		if err != nil {
			return goldenOutcome{status: "pass"}
		}
		return goldenOutcome{status: "missing error", out: out}
	}
	if err != nil {
		return goldenOutcome{status: "error", out: err.Error()}
	}
	want := c.Results
	if c.Result != nil {
		want = append(want, *c.Result)
	}
	if slices.Contains(want, out) {
		return goldenOutcome{status: "pass", out: out}
	}
	return goldenOutcome{status: "wrong output", out: out}
}
