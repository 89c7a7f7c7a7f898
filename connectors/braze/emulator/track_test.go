package emulator

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func objects(n int, format string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(format, i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestTrackValidation(t *testing.T) {
	ev := func(body string) string { return `{"events":[` + body + `]}` }
	pu := func(body string) string { return `{"purchases":[` + body + `]}` }
	at := func(body string) string { return `{"attributes":[` + body + `]}` }
	const okTime = `"time":"2026-11-20T10:00:00Z"`
	tests := []struct {
		name, body string
		status     int
		message    string
		minor      string // expected "type" substring of the first minor error
		array      string
		index      int
		counts     map[string]float64
	}{
		// braze.md §1, §3: more than 75 objects per array
		{"76 attributes", `{"attributes":` + objects(76, `{"external_id":"u-%d","x":1}`) + `}`, 400, "Max Input Length Exceeded", "", "", 0, nil},
		{"76 events", `{"events":` + objects(76, `{"external_id":"u-%d","name":"e",`+okTime+`}`) + `}`, 400, "Max Input Length Exceeded", "", "", 0, nil},
		{"76 purchases", `{"purchases":` + objects(76, `{"external_id":"u-%d","product_id":"p","currency":"EUR","price":1,`+okTime+`}`) + `}`, 400, "Max Input Length Exceeded", "", "", 0, nil},
		{"75 attributes pass", `{"attributes":` + objects(75, `{"external_id":"u-%d","x":1}`) + `}`, 201, "success", "", "", 0, map[string]float64{"attributes_processed": 75}},
		// braze.md §3: counts only for the arrays sent
		{"only events count", ev(`{"external_id":"u-1001","name":"visited",` + okTime + `}`), 201, "success", "", "", 0, map[string]float64{"events_processed": 1}},
		{"empty arrays", `{"attributes":[],"purchases":[]}`, 201, "success", "", "", 0, map[string]float64{"attributes_processed": 0, "purchases_processed": 0}},
		// identifiers (braze.md §3): one of external_id | user_alias | braze_id | email | phone
		{"no identifier", at(`{"external_id":"u-1001","x":1},{"x":1}`), 201, "success", "'external_id' or 'braze_id' or 'user_alias'", "attributes", 1, map[string]float64{"attributes_processed": 1}},
		{"two identifiers", at(`{"external_id":"u-1001","braze_id":"b","x":1}`), 201, "success", "only one of", "attributes", 0, map[string]float64{"attributes_processed": 0}},
		{"external_id as number", at(`{"external_id":1001,"x":1}`), 201, "success", "'external_id' must be a string", "attributes", 0, nil},
		{"object not an object", at(`{"external_id":"u-1001"},"u-1002"`), 201, "success", "must be an object", "attributes", 1, map[string]float64{"attributes_processed": 1}},
		// braze.md §3 events: name and ISO-8601 time required
		{"event without name", ev(`{"external_id":"u-1001",` + okTime + `}`), 201, "success", "'name' is required", "events", 0, map[string]float64{"events_processed": 0}},
		{"event without time", ev(`{"external_id":"u-1001","name":"e"},{"external_id":"u-1001","name":"e",` + okTime + `}`), 201, "success", "'time' is required", "events", 0, map[string]float64{"events_processed": 1}},
		{"event bad time", ev(`{"external_id":"u-1001","name":"e","time":"yesterday"}`), 201, "success", "not a valid ISO-8601", "events", 0, nil},
		{"event epoch time", ev(`{"external_id":"u-1001","name":"e","time":1700000000}`), 201, "success", "ISO-8601", "events", 0, nil},
		// braze.md §3 property names: no leading $, at most 255, not reserved
		{"property with $", ev(`{"external_id":"u-1001","name":"e",` + okTime + `,"properties":{"$x":1}}`), 201, "success", "must not start with '$'", "events", 0, nil},
		{"long property name", ev(`{"external_id":"u-1001","name":"e",` + okTime + `,"properties":{"` + strings.Repeat("p", 256) + `":1}}`), 201, "success", "longer than 255", "events", 0, nil},
		{"reserved property", ev(`{"external_id":"u-1001","name":"e",` + okTime + `,"properties":{"time":"x"}}`), 201, "success", "'time' is reserved", "events", 0, nil},
		{"reserved event_name", ev(`{"external_id":"u-1001","name":"e",` + okTime + `,"properties":{"event_name":"x"}}`), 201, "success", "'event_name' is reserved", "events", 0, nil},
		{"long string value", ev(`{"external_id":"u-1001","name":"e",` + okTime + `,"properties":{"s":"` + strings.Repeat("v", 256) + `"}}`), 201, "success", "longer than 255", "events", 0, nil},
		{"nested over 100 KB", ev(`{"external_id":"u-1001","name":"e",` + okTime + `,"properties":{"n":["` + strings.Repeat("v", 100*1024) + `"]}}`), 201, "success", "100 KB", "events", 0, nil},
		// braze.md §3 purchases: product_id ≤255, ISO-4217 currency, price, time, quantity ≤100
		{"purchase without product", pu(`{"external_id":"u-1001","currency":"EUR","price":1,` + okTime + `}`), 201, "success", "'product_id' is required", "purchases", 0, nil},
		{"long product id", pu(`{"external_id":"u-1001","product_id":"` + strings.Repeat("p", 256) + `","currency":"EUR","price":1,` + okTime + `}`), 201, "success", "'product_id' is longer than 255", "purchases", 0, nil},
		{"bad currency", pu(`{"external_id":"u-1001","product_id":"p","currency":"EURO","price":1,` + okTime + `}`), 201, "success", "ISO-4217", "purchases", 0, nil},
		{"unknown currency", pu(`{"external_id":"u-1001","product_id":"p","currency":"ABC","price":1,` + okTime + `}`), 201, "success", "ISO-4217", "purchases", 0, nil},
		{"no price", pu(`{"external_id":"u-1001","product_id":"p","currency":"EUR",` + okTime + `}`), 201, "success", "'price' is required", "purchases", 0, nil},
		{"price as string", pu(`{"external_id":"u-1001","product_id":"p","currency":"EUR","price":"1.5",` + okTime + `}`), 201, "success", "'price' must be a number", "purchases", 0, nil},
		{"quantity 101", pu(`{"external_id":"u-1001","product_id":"p","currency":"EUR","price":1,"quantity":101,` + okTime + `}`), 201, "success", "'quantity'", "purchases", 0, nil},
		{"quantity 1.5", pu(`{"external_id":"u-1001","product_id":"p","currency":"EUR","price":1,"quantity":1.5,` + okTime + `}`), 201, "success", "'quantity'", "purchases", 0, nil},
		{"purchase without time", pu(`{"external_id":"u-1001","product_id":"p","currency":"EUR","price":1}`), 201, "success", "'time' is required", "purchases", 0, nil},
		{"purchase ok", pu(`{"external_id":"u-1001","product_id":"p","currency":"eur","price":9.99,"quantity":100,` + okTime + `}`), 201, "success", "", "", 0, map[string]float64{"purchases_processed": 1}},
		// standard attribute formats (user attributes object)
		{"bad country", at(`{"external_id":"u-1001","country":"Spain","first_name":"Ana"}`), 201, "success", "'country' must be an ISO-3166-1", "attributes", 0, map[string]float64{"attributes_processed": 1}},
		{"bad language", at(`{"external_id":"u-1001","language":"es-ES"}`), 201, "success", "ISO-639-1", "attributes", 0, nil},
		{"bad time zone", at(`{"external_id":"u-1001","time_zone":"Mars/Olympus"}`), 201, "success", "IANA", "attributes", 0, nil},
		{"bad dob", at(`{"external_id":"u-1001","dob":"14/05/1990"}`), 201, "success", "YYYY-MM-DD", "attributes", 0, nil},
		{"bad gender", at(`{"external_id":"u-1001","gender":"female"}`), 201, "success", "'gender'", "attributes", 0, nil},
		{"bad inc", at(`{"external_id":"u-1001","points":{"inc":"5"}}`), 201, "success", "'inc' needs a number", "attributes", 0, nil},
		{"attribute with $", at(`{"external_id":"u-1001","$points":1}`), 201, "success", "must not start with '$'", "attributes", 0, nil},
		// fatal shapes
		{"no arrays", `{}`, 400, "Bad Request", "", "", 0, nil},
		{"attributes as object", `{"attributes":{"external_id":"u-1001"}}`, 400, "Bad Request", "", "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEmu(t, nil, Options{})
			r := post(t, e.Handler(), "/users/track", tt.body)
			if r.status != tt.status || r.message() != tt.message {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, r.message(), tt.status, tt.message, r.raw)
			}
			if tt.minor != "" {
				errs := list(r.body, "errors")
				if len(errs) == 0 {
					t.Fatalf("no errors: %s", r.raw)
				}
				first := obj(errs[0])
				if !strings.Contains(fmt.Sprint(first["type"]), tt.minor) || first["input_array"] != tt.array || first["index"] != float64(tt.index) {
					t.Errorf("first error %v, want type ~%q input_array %q index %d", first, tt.minor, tt.array, tt.index)
				}
			} else if tt.status == 201 && r.body["errors"] != nil {
				t.Errorf("unexpected errors %s", r.raw)
			}
			for k, want := range tt.counts {
				if r.body[k] != want {
					t.Errorf("%s = %v, want %v (%s)", k, r.body[k], want, r.raw)
				}
			}
			for _, k := range []string{"attributes_processed", "events_processed", "purchases_processed"} {
				if _, ok := tt.counts[k]; !ok && tt.counts != nil {
					if _, sent := r.body[k]; sent {
						t.Errorf("%s present though its array was not sent: %s", k, r.raw)
					}
				}
			}
		})
	}
}

func TestTrackApplies(t *testing.T) {
	e, clk := newEmu(t, nil, Options{})
	h := e.Handler()
	// braze.md §3: inc, add/remove, null removes; events and purchases are
	// recorded; external_id creates a user unless _update_existing_only.
	r := post(t, h, "/users/track", `{
	  "attributes": [
	    {"external_id":"u-1001","available_points":{"inc":250},"interests":{"add":["shoes","outerwear"],"remove":["coffee"]},"loyalty_tier":null,"first_name":"Ana María"},
	    {"external_id":"u-3001","first_name":"New"},
	    {"external_id":"u-3002","_update_existing_only":true,"first_name":"Ghost"},
	    {"user_alias":{"alias_name":"a-1","alias_label":"crm"},"first_name":"Alias only"},
	    {"user_alias":{"alias_name":"a-2","alias_label":"crm"},"_update_existing_only":false,"first_name":"Created alias"},
	    {"email":"claire.martin@example.com","city_of_birth":"Lyon"}
	  ],
	  "events": [
	    {"external_id":"u-1001","name":"offer_viewed","time":"2026-11-20T10:00:00+01:00","properties":{"offer_id":"1a2b","nested":{"a":[1,2]}}},
	    {"external_id":"u-1001","name":"from_the_future","time":"2030-01-01T00:00:00Z"}
	  ],
	  "purchases": [
	    {"external_id":"u-1002","product_id":"coat","currency":"USD","price":120.5,"time":"2026-11-19T08:00:00Z","properties":{"size":"M"}}
	  ]
	}`)
	if r.status != 201 || r.body["attributes_processed"] != float64(6) || r.body["events_processed"] != float64(2) || r.body["purchases_processed"] != float64(1) {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	ana := delivery(t, e, "u-1001")
	attrs := obj(ana["attributes"])
	if attrs["available_points"] != float64(1600) || fmt.Sprint(attrs["interests"]) != "[shoes outerwear]" || attrs["first_name"] != "Ana María" {
		t.Errorf("attributes %v", attrs)
	}
	if _, ok := attrs["loyalty_tier"]; ok {
		t.Errorf("null did not remove loyalty_tier: %v", attrs)
	}
	evs := list(ana, "events")
	if len(evs) != 2 || obj(evs[0])["time"] != "2026-11-20T09:00:00Z" || obj(obj(evs[0])["properties"])["offer_id"] != "1a2b" {
		t.Errorf("events %v", evs)
	}
	// braze.md §3: future timestamps become now
	if obj(evs[1])["time"] != clk.Now().Format(time.RFC3339) {
		t.Errorf("future event time %v", obj(evs[1])["time"])
	}
	ps := list(delivery(t, e, "u-1002"), "purchases")
	if len(ps) != 1 || obj(ps[0])["quantity"] != float64(1) || obj(ps[0])["price"] != 120.5 {
		t.Errorf("purchases %v", ps)
	}
	if d := delivery(t, e, "u-3001"); obj(d["attributes"])["first_name"] != "New" {
		t.Errorf("u-3001 %v", d)
	}
	if _, ok := e.Deliveries("u-3002"); ok {
		t.Errorf("_update_existing_only created u-3002")
	}
	// braze.md §3: with a user_alias, "update only" is the default
	if _, ok := e.Deliveries("crm:a-1"); ok {
		t.Errorf("an alias created a user without _update_existing_only false")
	}
	if d := delivery(t, e, "crm:a-2"); obj(d["attributes"])["first_name"] != "Created alias" {
		t.Errorf("alias user %v", d)
	}
	if d := delivery(t, e, claireBrazeID); obj(d["attributes"])["city_of_birth"] != "Lyon" {
		t.Errorf("email-identified update %v", d)
	}
}

func TestArrayAttributes(t *testing.T) {
	// user attributes object: arrays hold unique values, "add" moves a
	// present value to the end, at most max_array_length values.
	e, _ := newEmu(t, func(s *Seed) { s.Settings.MaxArrayLength = 3 }, Options{})
	h := e.Handler()
	steps := []struct{ attr, want string }{
		{`{"tags":["a","b","a"]}`, "[a b]"},
		{`{"tags":{"add":["a","c"]}}`, "[b a c]"},
		{`{"tags":{"add":["d"]}}`, "[a c d]"},
		{`{"tags":{"remove":["c","zz"]}}`, "[a d]"},
		{`{"tags":["1","2","3","4"]}`, "[1 2 3]"},
		{`{"tags":null}`, "<nil>"},
	}
	for _, s := range steps {
		body := `{"attributes":[` + strings.Replace(s.attr, "{", `{"external_id":"u-1002",`, 1) + `]}`
		if r := post(t, h, "/users/track", body); r.status != 201 || r.body["errors"] != nil {
			t.Fatalf("%s: %s", body, r.raw)
		}
		if got := fmt.Sprint(obj(delivery(t, e, "u-1002")["attributes"])["tags"]); got != s.want {
			t.Errorf("after %s: tags %s, want %s", s.attr, got, s.want)
		}
	}
}
