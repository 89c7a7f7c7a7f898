package liquid

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// answer returns a ConnectedContent that records the calls it gets and
// gives every one the same answer.
func answer(a ConnectedAnswer) (ConnectedContent, *[]ConnectedCall) {
	var mu sync.Mutex
	var calls []ConnectedCall
	return func(_ context.Context, c ConnectedCall) ConnectedAnswer {
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
		return a
	}, &calls
}

func parseMessage(t *testing.T, src string) *Template {
	t.Helper()
	tpl, problems := NewEngine(WithMessageTags()).Parse(src, Options{})
	if len(problems) > 0 {
		t.Fatalf("parse %q: %v", src, problems)
	}
	return tpl
}

func TestConnectedContentAnswers(t *testing.T) {
	obj := []byte(`{"payload":{"available_points":1350,"user_offers":[{"name":"Coat"},{"name":"Hat"}]}}`)
	tests := []struct {
		name, src string
		answer    ConnectedAnswer
		want      string
	}{
		{"JSON object into :save, with the status", `{% connected_content https://x.test/w :save wallet %}{{wallet.payload.available_points}} {{wallet.__http_status_code__}} {% for o in wallet.payload.user_offers %}{{o.name}};{% endfor %}`,
			ConnectedAnswer{Answered: true, Status: 200, Body: obj}, "1350 200 Coat;Hat;"},
		{"an error status is readable too", `{% connected_content https://x.test/w :save r %}{% if r.__http_status_code__ != 200 %}failed {{r.__http_status_code__}}: {{r.error}}{% endif %}`,
			ConnectedAnswer{Answered: true, Status: 500, Body: []byte(`{"error":"down"}`)}, "failed 500: down"},
		{"without :save the answer is in connected", `{% connected_content https://x.test/w %}[{{connected.payload.available_points}}]`,
			ConnectedAnswer{Answered: true, Status: 200, Body: obj}, "[1350]"},
		// __http_status_code__ is set for objects only (specs/braze.md §5).
		{"a JSON array gets no status", `{% connected_content https://x.test/a :save list %}{{list.size}} {{list[1]}} [{{list.__http_status_code__}}]`,
			ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`[1, 2, 3]`)}, "3 2 []"},
		{"text is inserted inline", `<{% connected_content https://x.test/t %}>`,
			ConnectedAnswer{Answered: true, Status: 200, Body: []byte("Hello from the API")}, "<Hello from the API>"},
		{"a bare number is text", `<{% connected_content https://x.test/n %}>`,
			ConnectedAnswer{Answered: true, Status: 200, Body: []byte("42")}, "<42>"},
		{"404 renders empty and saves nothing", `<{% connected_content https://x.test/gone :save r %}>[{{r}}]`,
			ConnectedAnswer{Answered: true, Status: 404, Body: []byte(`{"error":"not found"}`)}, "<>[]"},
		{"no answer (timeout) inserts nothing", `<{% connected_content https://x.test/slow :save r %}>[{{r.x}}]`,
			ConnectedAnswer{}, "<>[]"},
		{"an invalid JSON object is text", `<{% connected_content https://x.test/bad %}>`,
			ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`{"a":`)}, `<{"a":>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, calls := answer(tt.answer)
			out, err := parseMessage(t, tt.src).RenderWith(nil, RenderOptions{ConnectedContent: cc})
			if err != nil || out != tt.want {
				t.Errorf("got %q, %v; want %q", out, err, tt.want)
			}
			if len(*calls) != 1 {
				t.Errorf("%d calls, want 1", len(*calls))
			}
		})
	}
}

// The tag's options arrive rendered: Liquid and ${} in the URL, the
// headers and the body, the partner page's multi-line form included.
func TestConnectedContentCall(t *testing.T) {
	src := `{% capture postbody %}
{"user_id":"{{${user_id}}}","take":1000}
{% endcapture %}
{% connected_content
     {{endpoint_connect}}/offers/api/2.0/offers/get_user_offers?u={{${user_id} | url_param_escape}}
:method post
:headers {
       "Content-Type": "application/json",
       "X-Tier": "{{custom_attribute.${tier}}}"
  }
     :body {{postbody}}
     :content_type application/json
     :basic_auth sessionm_connect
     :cache_max_age 900
     :retry
     :save wallet
%}`
	cc, calls := answer(ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`{}`)})
	vars := map[string]any{"endpoint_connect": "https://connect.test", "user_id": "u&1", "custom_attribute": map[string]any{"tier": "Gold"}}
	if _, err := parseMessage(t, src).RenderWith(vars, RenderOptions{ConnectedContent: cc}); err != nil {
		t.Fatal(err)
	}
	want := ConnectedCall{
		Method: "POST", URL: "https://connect.test/offers/api/2.0/offers/get_user_offers?u=u%261",
		Headers:     [][2]string{{"Content-Type", "application/json"}, {"X-Tier", "Gold"}},
		Body:        "\n{\"user_id\":\"u&1\",\"take\":1000}\n",
		ContentType: "application/json", BasicAuth: "sessionm_connect", CacheMaxAge: 900 * time.Second, Retry: true, Save: "wallet",
		Line: 5, Column: 6, // its URL
	}
	if len(*calls) != 1 || !reflect.DeepEqual((*calls)[0], want) {
		t.Errorf("calls %+v\nwant %+v", *calls, want)
	}
}

func TestAbortMessage(t *testing.T) {
	tests := []struct{ name, src, reason string }{
		{"single quotes", `a{% abort_message('no offers') %}b`, "no offers"},
		{"double quotes", `{% abort_message("no offers") %}`, "no offers"},
		{"empty parentheses", `{% abort_message() %}`, ""},
		{"no argument", `{% abort_message %}`, ""},
		{"inside if and capture", `{% capture x %}{% if true %}{% abort_message('deep') %}{% endif %}{% endcapture %}`, "deep"},
		{"the reason is not Liquid", `{% abort_message('{{ x }}') %}`, "{{ x }}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := parseMessage(t, tt.src).RenderWith(map[string]any{"x": 1}, RenderOptions{})
			var abort *AbortError
			if !errors.As(err, &abort) || abort.Reason != tt.reason || out != "" {
				t.Errorf("got %q, %v; want an abort with reason %q", out, err, tt.reason)
			}
		})
	}
	// A :retry call that gave up aborts the message as well.
	cc, _ := answer(ConnectedAnswer{Abort: "gave up after 6 attempts"})
	_, err := parseMessage(t, `{% connected_content https://x.test :retry %}`).RenderWith(nil, RenderOptions{ConnectedContent: cc})
	var abort *AbortError
	if !errors.As(err, &abort) || abort.Reason != "gave up after 6 attempts" {
		t.Errorf("retry abort: %v", err)
	}
	// A template that is not aborted renders as usual.
	if out, err := parseMessage(t, `{% if false %}{% abort_message('x') %}{% endif %}sent`).RenderWith(nil, RenderOptions{}); out != "sent" || err != nil {
		t.Errorf("not aborted: %q, %v", out, err)
	}
}

func TestMessageTagProblems(t *testing.T) {
	tests := []struct {
		name, src string
		offset    int
		message   string
	}{
		{"no URL", `{% connected_content :save x %}`, 20, "needs a URL"},
		{"cache_bust", `{% connected_content https://x.test :cache_bust %}`, 36, ":cache_bust is not a connected_content option; to skip Braze's cache write :no_cache"},
		{"unknown option", `{% connected_content https://x.test :timeout 5 %}`, 36, "unknown connected_content option :timeout; the options are :auth_credentials, :basic_auth"},
		{"PUT", `{% connected_content https://x.test :method put %}`, 44, `supports only :method get and :method post, not "put"`},
		{"save name", `{% connected_content https://x.test :save 9x %}`, 42, `:save needs a variable name`},
		{"headers not JSON", `{% connected_content https://x.test :headers {'a': 1} %}`, 45, ":headers needs a JSON object"},
		{"headers a list", `{% connected_content https://x.test :headers [1] %}`, 45, `:headers needs a JSON object, {"Name": "value"}: it does not start with {`},
		{"headers with more after", `{% connected_content https://x.test :headers {"a":"b"}} %}`, 45, `:headers needs a JSON object, {"Name": "value"}: `},
		{"flag with a value", `{% connected_content https://x.test :retry 3 %}`, 43, `:retry takes no value; "3" does not belong to it`},
		{"option twice", `{% connected_content https://x.test :save a :save b %}`, 44, ":save is given twice"},
		{"option without value", `{% connected_content https://x.test :save %}`, 36, ":save needs a value"},
		{"cache age not a number", `{% connected_content https://x.test :cache_max_age soon %}`, 51, ":cache_max_age needs a number of seconds"},
		{"Liquid error in the URL", "\n{% connected_content https://x.test/{{ a | upcas }} %}", 44, `unknown filter "upcas"`},
		{"abort reason unquoted", `x{% abort_message(why) %}`, 4, "{% abort_message %} takes a quoted reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems := NewEngine(WithMessageTags()).Parse(tt.src, Options{})
			if len(problems) == 0 || problems[0].Offset != tt.offset || !strings.Contains(problems[0].Message, tt.message) {
				t.Errorf("problems %+v; want %q at %d", problems, tt.message, tt.offset)
			}
		})
	}
}

func TestMessageTagWarnings(t *testing.T) {
	tpl := parseMessage(t, `{% connected_content https://x.test :method post :body a=1&b=two words :cache_max_age 60 %}`)
	var got []string
	for _, w := range tpl.Warnings() {
		got = append(got, fmt.Sprintf("%d %s", w.Offset, w.Message))
	}
	want := []string{
		"55 Braze: an inline :body must not contain spaces; {% capture %} the body and write :body {{name}}",
		"86 Braze keeps :cache_max_age between 300 and 14400 seconds; 60 is treated as 300",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings\n%q\nwant\n%q", got, want)
	}
}

// Pipeline templates reach SessionM and Braze through their connections
// only: an engine without WithMessageTags refuses both tags.
func TestMessageTagsOnlyInMessages(t *testing.T) {
	for _, src := range []string{`{% connected_content https://evil.test :save x %}`, `a {% abort_message('x') %}`} {
		_, problems := NewEngine().Parse(src, Options{})
		if len(problems) != 1 || !strings.Contains(problems[0].Message, "belongs in Braze message templates") {
			t.Errorf("%s: %+v", src, problems)
		}
	}
	// A message engine without a way to call renders an error, not a call.
	_, err := parseMessage(t, `{% connected_content https://x.test %}`).Render(nil)
	if err == nil || !strings.Contains(err.Error(), "needs a way to make calls") {
		t.Errorf("render without ConnectedContent: %v", err)
	}
}

// The variables inside the tag count as the template's references; what
// the template defines itself (a capture, the :save variable) does not.
func TestConnectedContentRefs(t *testing.T) {
	tpl := parseMessage(t, `{% capture body %}{"id":"{{${user_id}}}"}{% endcapture %}{% connected_content {{endpoint}}/x :body {{body}} :headers {"K":"{{token}}"} :save w %}{{w.a}} {{connected.b}}`)
	var got []string
	for _, r := range tpl.Refs() {
		got = append(got, strings.Join(r.Path, "."))
	}
	want := []string{"user_id", "endpoint", "token", "connected.b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("refs %q, want %q", got, want)
	}
}

// One parsed message template rendered from many goroutines: each render
// has its own saved variable and its own calls (go test -race).
func TestConcurrentMessageRender(t *testing.T) {
	tpl := parseMessage(t, `{% connected_content https://x.test/{{id}} :save r %}{{r.id}}`)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := func(_ context.Context, c ConnectedCall) ConnectedAnswer {
				id := strings.TrimPrefix(c.URL, "https://x.test/")
				return ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`{"id":"` + id + `"}`)}
			}
			for range 20 {
				out, err := tpl.RenderWith(map[string]any{"id": i}, RenderOptions{ConnectedContent: cc})
				if err != nil || out != fmt.Sprint(i) {
					t.Errorf("render %d: %q, %v", i, out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A partial's tags are its own: its hoisted names are those of the
// caller's, but include and render make the partial's visible while it
// runs, and render passes on the way to make calls.
func TestMessageTagsInPartials(t *testing.T) {
	e := NewEngine(WithMessageTags(), WithPartials(map[string]string{
		"wallet": `{% connected_content https://x.test/wallet :save w %}{{w.url}}`,
		"ab":     `{% abort_message('from partial') %}`,
		"float":  `{{ 2.0 }}`,
	}))
	cc := func(_ context.Context, c ConnectedCall) ConnectedAnswer {
		return ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`{"url":"` + c.URL + `"}`)}
	}
	tests := []struct{ src, want, abort string }{
		{`{% connected_content https://x.test/promo :save p %}{{p.url}}|{% include 'wallet' %}|{{w.url}}`, "https://x.test/promo|https://x.test/wallet|https://x.test/wallet", ""},
		{`{% connected_content https://x.test/promo :save p %}{{p.url}}|{% render 'wallet' %}|{{w.url}}`, "https://x.test/promo|https://x.test/wallet|", ""},
		{`{{ 1.0 }}-{% include 'float' %}-{% render 'float' %}-{{ 1.0 }}`, "1.0-2.0-2.0-1.0", ""},
		{`{% if false %}{% abort_message('parent') %}{% endif %}{% include 'ab' %}`, "", "from partial"},
		{`{% if false %}{% abort_message('parent') %}{% endif %}{% render 'ab' %}`, "", "from partial"},
	}
	for _, tt := range tests {
		tpl, problems := e.Parse(tt.src, Options{})
		if len(problems) > 0 {
			t.Fatalf("%s: %v", tt.src, problems)
		}
		out, err := tpl.RenderWith(nil, RenderOptions{ConnectedContent: cc})
		var abort *AbortError
		switch {
		case tt.abort != "" && (!errors.As(err, &abort) || abort.Reason != tt.abort):
			t.Errorf("%s: %q, %v; want the abort %q", tt.src, out, err, tt.abort)
		case tt.abort == "" && (err != nil || out != tt.want):
			t.Errorf("%s: %q, %v; want %q", tt.src, out, err, tt.want)
		}
	}
}

// Content Blocks render where they stand, in the message's scope, as
// Braze inserts them: a block in an untaken branch makes no call.
func TestContentBlocksInPlace(t *testing.T) {
	blocks := map[string]string{
		"promo":  `{% connected_content https://x.test/promo :save promo %}Code {{promo.code}} for {{tier}}`,
		"outer":  `[{{content_blocks.${inner}}}]`,
		"inner":  `({{content_blocks.${third}}})`,
		"third":  `never`,
		"quit":   `{% abort_message('from a block') %}`,
		"broken": "ok\n{{ x | upcas }}",
	}
	tests := []struct {
		name, src string
		vars      map[string]any
		want      string
		calls     int
		warnings  []string
		err       string
	}{
		{"sees assigns, and its :save stays", `{% assign tier = "gold" %}{% if show %}{{content_blocks.${promo}}}{% endif %}|{{promo.code}}`,
			map[string]any{"show": true}, "Code P1 for gold|P1", 1, nil, ""},
		{"untaken branch: no call", `{% if show %}{{content_blocks.${promo}}}{% endif %}|{{promo.code}}`, nil, "|", 0, nil, ""},
		{"trim markers", "a  {{- content_blocks.${third} -}}  b", nil, "aneverb", 0, nil, ""},
		{"one level of nesting, not two", `{{content_blocks.${outer}}}`, nil, "[()]", 0,
			[]string{`inner:1:2: Content Blocks nest one level deep in Braze; "third" is a third level and renders empty`}, ""},
		{"missing block", "<\n <{{content_blocks.${nope}}}>", nil, "<\n <>", 0,
			[]string{`:2:3: there is no Content Block named "nope" (give --content-blocks DIR holding nope.liquid); it renders empty`}, ""},
		{"abort in a block", `x{{content_blocks.${quit}}}`, nil, "", 0, nil, "the message was aborted: from a block"},
		{"a block that does not parse", `{{content_blocks.${broken}}}`, nil, "", 0, nil, `content block broken:2:8: unknown filter "upcas"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, calls := answer(ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`{"code":"P1"}`)})
			var warnings []string
			out, err := parseMessage(t, tt.src).RenderWith(tt.vars, RenderOptions{ConnectedContent: cc, ContentBlocks: blocks,
				Warn: func(w RenderWarning) {
					warnings = append(warnings, fmt.Sprintf("%s:%d:%d: %s", w.Block, w.Line, w.Column, w.Message))
				}})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || out != tt.want || len(*calls) != tt.calls || !reflect.DeepEqual(warnings, tt.warnings) {
				t.Errorf("got %q, %v, %d calls, warnings %q; want %q, %d calls, %q", out, err, len(*calls), warnings, tt.want, tt.calls, tt.warnings)
			}
		})
	}
	// Without Content Blocks to render, the reference reads the variable.
	out, err := parseMessage(t, `{{content_blocks.${a}}}`).Render(map[string]any{"content_blocks": map[string]any{"a": "bound"}})
	if out != "bound" || err != nil {
		t.Errorf("bound variable: %q, %v", out, err)
	}
}

// The arguments of connected_content are text: an apostrophe in them
// quotes nothing, and the tag ends at its own %}.
func TestConnectedContentApostrophe(t *testing.T) {
	cc, calls := answer(ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`{"a":"x"}`)})
	out, err := parseMessage(t, `{% connected_content https://x.test/s?q=it's :save r %}Hi {{ r.a | default: 'friend' }}`).RenderWith(nil, RenderOptions{ConnectedContent: cc})
	if err != nil || out != "Hi x" || len(*calls) != 1 || (*calls)[0].URL != "https://x.test/s?q=it's" {
		t.Errorf("%q, %v, %+v", out, err, *calls)
	}
}

// Problems inside {% liquid %} lines point at the line's own text.
func TestMessageTagProblemsInLiquidTag(t *testing.T) {
	for _, tt := range []struct {
		src    string
		offset int
	}{
		{"x\n{% liquid\n  connected_content https://x.test/a :bogus\n%}", 49},
		{"x\n{% liquid\nconnected_content https://x.test/a :bogus\n%}", 47},
		{"x\n{% liquid\n  assign a = 1 | nofilter\n%}", 29},
	} {
		_, problems := NewEngine(WithMessageTags()).Parse(tt.src, Options{})
		if len(problems) == 0 || problems[0].Offset != tt.offset {
			t.Errorf("%q: %+v, want offset %d (%q)", tt.src, problems, tt.offset, tt.src[tt.offset:])
		}
	}
}

// An error inside the tag quotes it as written, not as the engine holds it.
func TestConnectedContentErrorQuotesTheTag(t *testing.T) {
	cc, _ := answer(ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`{}`)})
	_, err := parseMessage(t, `{% connected_content https://x.test/{{ 1 | divided_by: 0 }} :save r %}`).RenderWith(nil, RenderOptions{ConnectedContent: cc})
	if err == nil || strings.Contains(err.Error(), "0x") || !strings.Contains(err.Error(), "division by zero in {{ 1 | divided_by: 0 }} in {% connected_content https://x.test/") {
		t.Errorf("error %v; want one quoting the markup that failed and the tag, as written", err)
	}
}

// An error of a render says where the markup that failed is: in the
// template, or in the Content Block it happened in, as written (before the
// pre-pass rewrote either).
func TestRenderErrorsArePlaced(t *testing.T) {
	blocks := map[string]string{
		"bad":   "foot\n  {{ 1 | divided_by: zero }}",
		"outer": "x\n{{content_blocks.${bad}}}",
		"call":  "\n {% connected_content https://x.test/{{ 1 | divided_by: zero }} %}",
	}
	tests := []struct {
		name, src string
		want      RenderError
	}{
		{"in the template", "a\n b {{ 1 | divided_by: zero }}", RenderError{Line: 2, Column: 4}},
		{"the same markup twice, the second fails", "{% if no %}{{ 1 | divided_by: zero }}{% endif %}\n{{ 1 | divided_by: zero }}", RenderError{Line: 2, Column: 1}},
		{"after a liquid tag the pre-pass expands", "{% liquid\n  assign a = 1\n  echo a %}\n{{ 1 | divided_by: zero }}", RenderError{Line: 4, Column: 1}},
		{"after a comment", "<!-- a\nb -->{{ 1 | divided_by: zero }}", RenderError{Line: 2, Column: 6}},
		{"inside a tag's template", "\n\n  {% connected_content https://x.test/{{ 1 | divided_by: zero }} %}", RenderError{Line: 3, Column: 3}},
		{"inside a for loop", "{% for i in (1..2) %}\n  {{ 1 | divided_by: zero }}\n{% endfor %}", RenderError{Line: 2, Column: 3}},
		{"inside a loop in a loop", "{% for i in (1..2) %}{% for j in (1..2) %}\n {% if true %}x{{ 1 | divided_by: zero }}{% endif %}{% endfor %}{% endfor %}", RenderError{Line: 2, Column: 16}},
		{"in a block", "{{content_blocks.${bad}}}", RenderError{Block: "bad", Line: 2, Column: 3}},
		{"in a block in a block", "{{content_blocks.${outer}}}", RenderError{Block: "bad", Line: 2, Column: 3}},
		{"inside a block's tag", "{{content_blocks.${call}}}", RenderError{Block: "call", Line: 2, Column: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, _ := answer(ConnectedAnswer{Answered: true, Status: 200, Body: []byte(`{}`)})
			_, err := parseMessage(t, tt.src).RenderWith(map[string]any{"zero": 0}, RenderOptions{ConnectedContent: cc, ContentBlocks: blocks})
			var got *RenderError
			if !errors.As(err, &got) || got.Block != tt.want.Block || got.Line != tt.want.Line || got.Column != tt.want.Column || !strings.Contains(got.Message, "division by zero") || !strings.Contains(got.Message, " in {") {
				t.Fatalf("error %#v (%v); want %s at %d:%d", got, err, tt.want.Block, tt.want.Line, tt.want.Column)
			}
		})
	}
}

// Output over the limit is an error that says what to look for, not
// "template failed" (a re-QA).
func TestOutputOverTheLimitSaysWhat(t *testing.T) {
	_, err := parseMessage(t, "{% for i in (1..200000) %}xxxxxxxxxx{% endfor %}").Render(nil)
	var re *RenderError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "larger than the limit of 1048576 bytes: a loop or a repeated block") || strings.Contains(err.Error(), "template failed") {
		t.Fatalf("error %v; want one saying the output is over the limit", err)
	}
}
