package sandbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	anaID          = "3c1d7e2a-32f5-11ef-b3e4-0242ac120002"
	retailerID     = "8f9a2b3c-1d2e-4f50-9a6b-7c8d9e0f1a2b"
	doubleV1       = "4d5e6f70-8192-4a33-bc4d-5e6f708192a3"
	brazeKey       = "Bearer sandbox-braze-key"
	winterCampaign = "9b1f3c2e-4d5a-4b6c-8d7e-0f1a2b3c4d5e"
)

var coreAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte("sandbox-core-key:sandbox-core-secret"))

// newTestSandbox serves the built-in seeds on loopback; waits between
// sender retries are real but scaled down by each test's time_scale.
func newTestSandbox(t *testing.T, opts Options) (*Sandbox, *httptest.Server) {
	t.Helper()
	if opts.RandSeed == 0 {
		opts.RandSeed = 7
	}
	sb, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(func() {
		srv.Close()
		sb.Close()
	})
	return sb, srv
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("not a JSON object (%d): %s", a.status, a.body)
	}
	return m
}

func call(t *testing.T, method, url, auth, body string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func tagsURL(srv *httptest.Server, user string) string {
	return srv.URL + "/sessionm/core/priv/v1/apps/sandbox-core-key/users/" + user + "/tags"
}

// One listener serves the three emulators under their prefixes, records
// every request (credentials masked), and answers what each user holds.
func TestEmulatorsJournalAndDeliveries(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	if a := call(t, "POST", tagsURL(srv, anaID), coreAuth, `{"tags":["braze_test"],"ttl":2592000}`); a.status != 200 {
		t.Fatalf("tags: %d %s", a.status, a.body)
	}
	trigger := `{"campaign_id":"` + winterCampaign + `","recipients":[{"external_user_id":"u-1001","trigger_properties":{"offer_id":"X"}}]}`
	if a := call(t, "POST", srv.URL+"/braze/campaigns/trigger/send", brazeKey, trigger); a.status != 201 {
		t.Fatalf("trigger: %d %s", a.status, a.body)
	}
	offers := `{"retailer_id":"` + retailerID + `","user_id":"` + anaID + `"}`
	if a := call(t, "POST", srv.URL+"/sessionm/connect/offers/api/2.0/offers/get_user_offers", "Basic c2FuZGJveC1jb25uZWN0OnNhbmRib3gtc2VjcmV0", offers); a.status != 200 {
		t.Fatalf("get_user_offers: %d %s", a.status, a.body)
	}

	page := call(t, "GET", srv.URL+"/_sandbox/requests", "", "").json(t)
	reqs := page["requests"].([]any)
	if len(reqs) != 3 {
		t.Fatalf("journal holds %d requests, want 3", len(reqs))
	}
	first := reqs[0].(map[string]any)
	if first["emulator"] != SessionMCore || first["status"] != 200.0 || !strings.Contains(first["body"].(string), "braze_test") {
		t.Fatalf("first entry %v", first)
	}
	if auth := first["header"].(map[string]any)["Authorization"]; auth != "Basic ****" {
		t.Fatalf("journal shows Authorization %q", auth)
	}
	page = call(t, "GET", srv.URL+"/_sandbox/requests?path=/braze/*", "", "").json(t)
	if n := len(page["requests"].([]any)); n != 1 {
		t.Fatalf("path filter: %d requests", n)
	}
	next := int(page["next_since"].(float64))
	if n := len(call(t, "GET", srv.URL+"/_sandbox/requests?since="+itoa(next), "", "").json(t)["requests"].([]any)); n != 0 {
		t.Fatalf("since=next_since returned %d old requests", n)
	}

	d := call(t, "GET", srv.URL+"/_sandbox/deliveries?user=u-1001", "", "").json(t)
	tags := d["sessionm"].(map[string]any)["tags"].(map[string]any)
	if _, ok := tags["braze_test"]; !ok {
		t.Fatalf("sessionm deliveries %v", d["sessionm"])
	}
	msgs := d["braze"].(map[string]any)["messages"].([]any)
	if len(msgs) != 1 || !strings.Contains(string(mustJSON(msgs[0])), `"offer_id":"X"`) {
		t.Fatalf("braze deliveries %v", d["braze"])
	}
	// Asked by her SessionM id, both sides too: only SessionM's came.
	byID := call(t, "GET", srv.URL+"/_sandbox/deliveries?user="+anaID, "", "").json(t)
	if b, _ := byID["braze"].(map[string]any); b == nil || len(b["messages"].([]any)) != 1 || byID["sessionm"] == nil {
		t.Fatalf("deliveries by SessionM id: %v", byID)
	}
	if a := call(t, "GET", srv.URL+"/_sandbox/deliveries?user=nobody", "", ""); a.status != 404 || !strings.Contains(string(a.body), "neither emulator knows") {
		t.Fatalf("unknown user: %d %s", a.status, a.body)
	}
	all := call(t, "GET", srv.URL+"/_sandbox/deliveries", "", "").json(t)
	if all["sessionm"] == nil || all["braze"] == nil {
		t.Fatalf("all deliveries %v", all)
	}

	if a := call(t, "POST", srv.URL+"/_sandbox/reset", "", ""); a.status != 204 {
		t.Fatalf("reset: %d", a.status)
	}
	if n := len(call(t, "GET", srv.URL+"/_sandbox/requests", "", "").json(t)["requests"].([]any)); n != 0 {
		t.Fatalf("journal after reset holds %d", n)
	}
	d = call(t, "GET", srv.URL+"/_sandbox/deliveries?user=u-1001", "", "").json(t)
	if _, ok := d["sessionm"].(map[string]any)["tags"].(map[string]any)["braze_test"]; ok {
		t.Fatal("reset kept the tag")
	}
}

func TestFaultsOverHTTP(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	addFault := func(body string) {
		t.Helper()
		if a := call(t, "POST", srv.URL+"/_sandbox/faults", "", body); a.status != 201 {
			t.Fatalf("add fault %s: %d %s", body, a.status, a.body)
		}
	}
	track := `{"attributes":[{"external_id":"u-1001","tier":"gold"}]}`

	// A 5xx in Braze's own shape, once.
	addFault(`{"emulator":"braze","error_ratio":1,"error_status":502,"count":1}`)
	a := call(t, "POST", srv.URL+"/braze/users/track", brazeKey, track)
	if a.status != 502 || a.json(t)["message"] == nil {
		t.Fatalf("fault: %d %s", a.status, a.body)
	}
	if a.header.Get("X-Ratelimit-Limit") != "3000" || a.header.Get("X-Ratelimit-Remaining") == "" || a.header.Get("X-Ratelimit-Reset") == "" {
		t.Fatalf("an injected Braze answer lacks the rate-limit headers every Braze answer has: %v", a.header)
	}
	if a = call(t, "POST", srv.URL+"/braze/users/track", brazeKey, track); a.status != 201 {
		t.Fatalf("after the fault is spent: %d %s", a.status, a.body)
	}

	// A Braze 429 burst: the reset time is rounded up, never inside the
	// burst.
	addFault(`{"emulator":"braze","throttle":{"for":"1500ms"},"count":1}`)
	a = call(t, "POST", srv.URL+"/braze/users/track", brazeKey, track)
	reset, _ := strconv.ParseInt(a.header.Get("X-Ratelimit-Reset"), 10, 64)
	if a.status != 429 || a.header.Get("X-Ratelimit-Remaining") != "0" || time.Unix(reset, 0).Before(time.Now().Add(1400*time.Millisecond)) {
		t.Fatalf("braze 429: %d %v", a.status, a.header)
	}

	// A 429 burst in SessionM's shape with Retry-After.
	addFault(`{"emulator":"sessionm_core","throttle":{"for":"3s"}}`)
	a = call(t, "POST", tagsURL(srv, anaID), coreAuth, `{"tags":["x"]}`)
	if a.status != 429 || a.header.Get("Retry-After") != "3" || !strings.Contains(string(a.body), `"rate_limited"`) {
		t.Fatalf("throttle: %d %v %s", a.status, a.header, a.body)
	}
	call(t, "DELETE", srv.URL+"/_sandbox/faults", "", "")

	// A dropped connection: the client sees no answer at all.
	addFault(`{"path":"/sessionm/core/*","drop_ratio":1,"count":1}`)
	req, _ := http.NewRequest("POST", tagsURL(srv, anaID), strings.NewReader(`{"tags":["x"]}`))
	req.Header.Set("Authorization", coreAuth)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a dropped connection answered %d", resp.StatusCode)
	}

	// Latency delays the answer.
	addFault(`{"emulator":"braze","latency":"80ms","count":1}`)
	start := time.Now()
	call(t, "POST", srv.URL+"/braze/users/track", brazeKey, track)
	if waited := time.Since(start); waited < 80*time.Millisecond {
		t.Fatalf("answered after %v despite 80ms latency", waited)
	}

	page := call(t, "GET", srv.URL+"/_sandbox/requests", "", "").json(t)
	var faults []string
	for _, e := range page["requests"].([]any) {
		if f, ok := e.(map[string]any)["fault"].(string); ok {
			faults = append(faults, f)
		}
	}
	if len(faults) != 4 || !strings.Contains(faults[0], "HTTP 502") || !strings.Contains(faults[1], "429") || !strings.Contains(faults[2], "429") || !strings.Contains(faults[3], "dropped") {
		t.Fatalf("journal faults %q", faults)
	}
	if list := call(t, "GET", srv.URL+"/_sandbox/faults", "", "").json(t)["faults"].([]any); len(list) != 0 {
		t.Fatalf("spent rules still listed: %v", list)
	}
}

func TestControlAPIErrors(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	tests := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/_sandbox/faults", `{"error_ratio":"lots"}`, 400, "error_ratio: expected a number"},
		{"POST", "/_sandbox/faults", `{"eror_ratio":0.5}`, 400, `request body: unknown field \"eror_ratio\"`},
		{"POST", "/_sandbox/faults", `{"count":1.5,"latency":"1s"}`, 400, "count: expected a whole number, got number 1.5"},
		{"PUT", "/_sandbox/faults", ``, 405, "takes GET or POST or DELETE"},
		{"GET", "/_sandbox/reset", ``, 405, "takes POST"},
		{"POST", "/_sandbox/faults", `{"latency":"1s"} {}`, 400, "found more after it"},
		{"POST", "/_sandbox/faults", ``, 400, "empty"},
		{"POST", "/_sandbox/faults", `{"drop_ratio":2}`, 400, "drop_ratio must be between 0 and 1"},
		{"DELETE", "/_sandbox/faults/99", ``, 404, "no fault rule 99"},
		{"DELETE", "/_sandbox/faults/x", ``, 400, "not a positive number"},
		{"GET", "/_sandbox/requests?since=x", ``, 400, "query parameter since"},
		{"GET", "/_sandbox/requests?pth=/braze/*", ``, 400, "unknown query parameter pth=; requests takes since=, path="},
		{"GET", "/_sandbox/requests?path=/braze/*&path=/sessionm/*", ``, 400, "path= is given 2 times"},
		{"GET", "/_sandbox/deliveries?usr=u-1001", ``, 400, "unknown query parameter usr=; deliveries takes user=, limit="},
		{"GET", "/_sandbox/nothing", ``, 404, "GET /_sandbox/ lists them"},
		{"GET", "/shopify/orders", ``, 404, "not served here"},
		{"GET", "/_sandbox/jobs/nope", ``, 404, `no job \"nope\"`},
		{"POST", "/_sandbox/faults", `{"latency":"1s","x":"` + strings.Repeat("y", controlBodyLimit) + `"}`, 413, "limited to"},
	}
	for _, tt := range tests {
		a := call(t, tt.method, srv.URL+tt.path, "", tt.body)
		if a.status != tt.status || !strings.Contains(string(a.body), tt.want) {
			t.Errorf("%s %s %.40s: %d %s; want %d and %q", tt.method, tt.path, tt.body, a.status, a.body, tt.status, tt.want)
		}
	}
	idx := call(t, "GET", srv.URL+"/_sandbox/", "", "").json(t)
	if idx["emulators"].(map[string]any)[Braze] != srv.URL+"/braze" {
		t.Fatalf("index %v", idx)
	}
}

// receiver records what the senders deliver, failing each user's first
// attempts as told.
type receiver struct {
	mu       sync.Mutex
	failures map[string]int // path -> statuses still to fail with 503
	got      []receivedRequest
}

type receivedRequest struct {
	path   string
	header http.Header
	body   string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got = append(rc.got, receivedRequest{r.URL.Path, r.Header.Clone(), string(b)})
	if rc.failures[r.URL.Path] > 0 {
		rc.failures[r.URL.Path]--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func TestWebhookCampaignSender(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	rc := &receiver{failures: map[string]int{"/hooks/u-1002": 2}}
	target := httptest.NewServer(rc)
	defer target.Close()

	body := `{
	  "url": "` + target.URL + `/hooks/{{${user_id}}}",
	  "headers": {"Authorization": "Bearer hook-token"},
	  "body": "{\"tags\":[\"{{campaign.${name}}}\"],\"name\":\"{{${first_name}}}\",\"lang\":\"{{${language}}}\"}",
	  "users": ["u-1001", "u-1002"],
	  "campaign": {"id": "c1", "name": "spring_promo"},
	  "time_scale": 0.0001,
	  "details": true
	}`
	a := call(t, "POST", srv.URL+"/_sandbox/braze/webhook-campaign", "", body)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var job JobStatus
	if err := json.Unmarshal(a.body, &job); err != nil {
		t.Fatal(err)
	}
	if job.State != "done" || job.Total != 2 || job.Delivered != 2 || job.Retries != 2 || len(job.Deliveries) != 2 {
		t.Fatalf("job %+v", job)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) != 4 {
		t.Fatalf("receiver got %d requests, want 4 (u-1002 twice refused)", len(rc.got))
	}
	bodies := map[string]string{}
	for _, g := range rc.got {
		if !strings.HasPrefix(g.header.Get("User-Agent"), "Braze Sender ") || g.header.Get("Authorization") != "Bearer hook-token" || g.header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", g.header)
		}
		bodies[g.path] = g.body
	}
	if bodies["/hooks/u-1001"] != `{"tags":["spring_promo"],"name":"Ana","lang":"es"}` {
		t.Fatalf("u-1001 body %s", bodies["/hooks/u-1001"])
	}
	if !strings.Contains(bodies["/hooks/u-1002"], `"name":"Sam"`) {
		t.Fatalf("u-1002 body %s", bodies["/hooks/u-1002"])
	}
}

func TestWebhookCampaignRequestErrors(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	tests := []struct{ body, want string }{
		{`{"users":["u-1001"]}`, "url is required"},
		{`{"url":"http://x/","users":["u-1001"],"segment":"all"}`, "either a segment or users"},
		{`{"url":"http://x/","users":["u-1001"],"method":"PATCH"}`, "POST, GET, PUT or DELETE"},
		{`{"url":"http://x/","users":["u-1001"],"method":"GET","body":"x"}`, "GET webhook carries no body"},
		{`{"url":"http://x/","users":["u-1001"],"body":"{{ x | nope }}"}`, `body: line 1, column`},
		{`{"url":"http://x/","users":["u-9999"]}`, "u-9999"},
		{`{"url":"http://x/","segment":"no-such-segment"}`, "no-such-segment"},
		{`{"url":"http://x/","users":["u-1001"],"time_scale":-1}`, "time_scale"},
	}
	for _, tt := range tests {
		a := call(t, "POST", srv.URL+"/_sandbox/braze/webhook-campaign", "", tt.body)
		if a.status != 400 || !strings.Contains(string(a.body), tt.want) {
			t.Errorf("%s: %d %s; want 400 and %q", tt.body, a.status, a.body, tt.want)
		}
	}
}

func TestSessionMEmitter(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	rc := &receiver{}
	target := httptest.NewServer(rc)
	defer target.Close()

	body := `{"url":"` + target.URL + `/hooks/sessionm/offers","headers":{"Authorization":"Bearer t"},
	  "event_type":"offer_issued","users":["u-1001"],"offer_id":"` + doubleV1 + `",
	  "campaign":{"id":"c-1","braze_campaign_id":"` + winterCampaign + `"}}`
	if a := call(t, "POST", srv.URL+"/_sandbox/sessionm/emit", "", body); a.status != 200 || !strings.Contains(string(a.body), `"delivered": 1`) {
		t.Fatalf("emit: %d %s", a.status, a.body)
	}
	points := `{"url":"` + target.URL + `/hooks/sessionm/points","event_type":"points_awarded","users":["u-1001"],"points":250,"count":2,"async":true}`
	a := call(t, "POST", srv.URL+"/_sandbox/sessionm/emit", "", points)
	if a.status != 202 {
		t.Fatalf("async emit: %d %s", a.status, a.body)
	}
	jobID := a.json(t)["id"].(string)
	deadline := time.Now().Add(5 * time.Second)
	for call(t, "GET", srv.URL+"/_sandbox/jobs/"+jobID, "", "").json(t)["state"] != "done" {
		if time.Now().After(deadline) {
			t.Fatal("the async job did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}

	rc.mu.Lock()
	got := append([]receivedRequest(nil), rc.got...)
	rc.mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("receiver got %d events, want 3", len(got))
	}
	var offer map[string]any
	if err := json.Unmarshal([]byte(got[0].body), &offer); err != nil {
		t.Fatal(err)
	}
	user := offer["user"].(map[string]any)
	if offer["event_type"] != "offer_issued" || offer["retailer_id"] != retailerID || user["external_id"] != "u-1001" || user["culture"] != "es-ES" ||
		offer["campaign"].(map[string]any)["braze_campaign_id"] != winterCampaign || got[0].header.Get("Authorization") != "Bearer t" {
		t.Fatalf("event %s", got[0].body)
	}
	userOfferID := offer["offer"].(map[string]any)["user_offer_id"].(string)
	d := call(t, "GET", srv.URL+"/_sandbox/deliveries?user=u-1001", "", "").json(t)["sessionm"].(map[string]any)
	if !strings.Contains(string(mustJSON(d["wallet"])), userOfferID) {
		t.Fatalf("the emitted offer %s is not in the wallet: %v", userOfferID, d["wallet"])
	}
	if d["available_points"] != 1850.0 {
		t.Fatalf("points %v, want 1350 + 2 x 250", d["available_points"])
	}
	var e1, e2 map[string]any
	json.Unmarshal([]byte(got[1].body), &e1)
	json.Unmarshal([]byte(got[2].body), &e2)
	if e1["event_id"] == e2["event_id"] {
		t.Fatal("two events share an event_id")
	}

	// A request that names one unknown user changes nobody's balance.
	before := call(t, "GET", srv.URL+"/_sandbox/deliveries?user=u-1001", "", "").json(t)["sessionm"].(map[string]any)["available_points"]
	if a := call(t, "POST", srv.URL+"/_sandbox/sessionm/emit", "", `{"url":"http://x/","event_type":"points_awarded","users":["u-1001","nobody"],"points":5}`); a.status != 400 {
		t.Fatalf("emit to an unknown user: %d %s", a.status, a.body)
	}
	if after := call(t, "GET", srv.URL+"/_sandbox/deliveries?user=u-1001", "", "").json(t)["sessionm"].(map[string]any)["available_points"]; after != before {
		t.Fatalf("a refused emit changed u-1001's points from %v to %v", before, after)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"url":"http://x/","event_type":"tier_changed","users":["u-1001"]}`, "offer_issued or points_awarded"},
		{`{"url":"http://x/","event_type":"offer_issued","users":["u-1001"]}`, "needs offer_id"},
		{`{"url":"http://x/","event_type":"points_awarded","users":["u-1001"],"points":-5}`, "positive"},
		{`{"url":"ftp://x/","event_type":"points_awarded","users":["u-1001"],"points":5}`, "not an absolute http"},
		{`{"url":"http://x/","event_type":"points_awarded","users":["nobody"],"points":5}`, `user \"nobody\"`},
		{`{"url":"http://x/","event_type":"points_awarded","users":["u-1001"],"points":5,"count":4611686018427387904}`, "count times users"},
		{`{"url":"http://x/","event_type":"offer_issued","users":["u-1001"],"offer_id":"nope"}`, "nope"},
	} {
		a := call(t, "POST", srv.URL+"/_sandbox/sessionm/emit", "", tt.body)
		if a.status != 400 || !strings.Contains(string(a.body), tt.want) {
			t.Errorf("%s: %d %s; want 400 and %q", tt.body, a.status, a.body, tt.want)
		}
	}
}

// A web page open in the operator's browser cannot drive the control
// API, neither by a cross-site post nor through DNS rebinding: its
// senders would post, from this machine, to the engine's admin listener.
// Go clients and curl, which send no Origin, and the emulators are
// unaffected.
func TestControlAPIRefusesWebPages(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	rc := &receiver{}
	target := httptest.NewServer(rc)
	defer target.Close()
	emit := `{"url":"` + target.URL + `/-/reload","event_type":"points_awarded","users":["u-1001"],"points":5}`
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example", "Content-Type": "text/plain"}
	tests := []struct {
		name, method, path, host string
		header                   map[string]string
		body                     string
		want                     int
	}{
		{"cross-site emit", "POST", "/_sandbox/sessionm/emit", "", crossSite, emit, 403},
		{"cross-site campaign", "POST", "/_sandbox/braze/webhook-campaign", "", crossSite, `{}`, 403},
		{"cross-site reset", "POST", "/_sandbox/reset", "", map[string]string{"Origin": "https://evil.example"}, "", 403},
		{"rebound emit", "POST", "/_sandbox/sessionm/emit", "rebind.evil.example" + port, map[string]string{"Sec-Fetch-Site": "same-origin"}, emit, 403},
		{"rebound journal", "GET", "/_sandbox/requests", "rebind.evil.example" + port, nil, "", 403},
		{"same-origin reset", "POST", "/_sandbox/reset", "", map[string]string{"Sec-Fetch-Site": "same-origin"}, "", 204},
		{"localhost journal", "GET", "/_sandbox/requests", "localhost" + port, nil, "", 200},
		{"cross-site journal read", "GET", "/_sandbox/requests", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, "", 200},
		{"emulator by name", "GET", "/sessionm/core/priv/v1/apps/sandbox-core-key/users/" + anaID + "/tags", "sandbox.internal" + port, map[string]string{"Authorization": coreAuth, "Origin": "https://evil.example"}, "", 200},
		{"go client emit", "POST", "/_sandbox/sessionm/emit", "", nil, emit, 200},
	}
	for _, tt := range tests {
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		req, err := http.NewRequest(tt.method, srv.URL+tt.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if tt.host != "" {
			req.Host = tt.host
		}
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: %d %s; want %d", tt.name, resp.StatusCode, b, tt.want)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) != 1 {
		t.Fatalf("the target got %d requests, want the Go client's 1", len(rc.got))
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func itoa(n int) string { return strings.TrimSpace(string(mustJSON(n))) }

// A seed folder replaces the built-in seeds.
func TestSeedFolder(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"sessionm.yaml", "braze.yaml"} {
		data, err := os.ReadFile("../examples/sandbox/" + name)
		if err != nil {
			t.Fatal(err)
		}
		data = []byte(strings.Replace(string(data), "generated_users: 0", "generated_users: 3", 1))
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, srv := newTestSandbox(t, Options{SeedDir: dir})
	gen := "00000002-32f5-11ef-8000-000000000002"
	if a := call(t, "POST", tagsURL(srv, gen), coreAuth, `{"tags":["x"]}`); a.status != 200 {
		t.Fatalf("a user of the folder's seed: %d %s", a.status, a.body)
	}
	if _, err := New(Options{SeedDir: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing folder: %v", err)
	}
	os.Remove(filepath.Join(dir, "braze.yaml"))
	if _, err := New(Options{SeedDir: dir}); err == nil || !strings.Contains(err.Error(), "braze.yaml") {
		t.Fatalf("missing seed file: %v", err)
	}
}

// Odd paths reach the emulator, which answers in its own envelope, not
// with a redirect.
func TestOddPathsGetTheAPIsAnswer(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/sessionm/core", "/sessionm/core//priv/v1/apps/k/users/u/tags", "/braze/../braze/users/track", "/braze"} {
		req, _ := http.NewRequest("POST", srv.URL+p, strings.NewReader("{}"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 3 || (!strings.Contains(string(body), `"status":"error"`) && !strings.Contains(string(body), `"message"`)) {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
}

// A client that connects and sends nothing does not hold up a stop.
func TestServeStopsWithIdleConnections(t *testing.T) {
	sb, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sb.Serve(ctx, ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the sandbox did not stop within 3 s")
	}
}

// braze.md §4: "Examples use {{...}} in header values, but no page states
// that Liquid works there (unconfirmed)". render_header_liquid false sends
// header values as written; the default renders them.
func TestWebhookCampaignHeaderLiquid(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	tests := []struct {
		name, option, want string
	}{
		{"default renders", ``, "Bearer u-1001 es"},
		{"true renders", `"render_header_liquid": true,`, "Bearer u-1001 es"},
		{"false sends the text", `"render_header_liquid": false,`, "Bearer {{${user_id}}} {{${language}}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &receiver{}
			target := httptest.NewServer(rc)
			defer target.Close()
			const header = "Bearer {{${user_id}}} {{${language}}}"
			a := call(t, "POST", srv.URL+"/_sandbox/braze/webhook-campaign", "", `{`+tt.option+`
			  "url": "`+target.URL+`/hooks/{{${user_id}}}",
			  "headers": {"Authorization": "`+header+`"},
			  "body": "{\"id\":\"{{${user_id}}}\"}",
			  "users": ["u-1001"]}`)
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.body)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.got) != 1 {
				t.Fatalf("receiver got %d requests", len(rc.got))
			}
			g := rc.got[0]
			// the URL and body are rendered either way
			if g.path != "/hooks/u-1001" || g.body != `{"id":"u-1001"}` {
				t.Errorf("path %s body %s", g.path, g.body)
			}
			if got := g.header.Get("Authorization"); got != tt.want {
				t.Errorf("Authorization %q, want %q", got, tt.want)
			}
		})
	}
}

// A user's events go out one after another, in the order generated, so a
// receiver that orders by user sees them as SessionM would send them; the
// job still sends to different users at once.
func TestEmitterKeepsEachUsersEventsInOrder(t *testing.T) {
	_, srv := newTestSandbox(t, Options{})
	var mu sync.Mutex
	inFlight := map[string]int{}
	var most, mostOverall, overall int
	balances := map[string][]float64{} // per user, in arrival order
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			User struct {
				ExternalID string `json:"external_id"`
			} `json:"user"`
			Points struct {
				Balance float64 `json:"available_points"`
			} `json:"points"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("event body: %v", err)
		}
		user := ev.User.ExternalID
		mu.Lock()
		inFlight[user]++
		overall++
		most, mostOverall = max(most, inFlight[user]), max(mostOverall, overall)
		balances[user] = append(balances[user], ev.Points.Balance)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight[user]--
		overall--
		mu.Unlock()
	}))
	defer target.Close()

	body := `{"url":"` + target.URL + `/hooks/sessionm/points","event_type":"points_awarded",
	  "users":["u-1001","u-1002"],"points":5,"count":4,"concurrency":8,"details":true}`
	a := call(t, "POST", srv.URL+"/_sandbox/sessionm/emit", "", body)
	if a.status != 200 || !strings.Contains(string(a.body), `"delivered": 8`) {
		t.Fatalf("emit: %d %s", a.status, a.body)
	}
	if most != 1 {
		t.Errorf("up to %d events of one user were in flight at once; want 1", most)
	}
	if mostOverall < 2 {
		t.Errorf("the two users' events never overlapped; the job should send to several users at once")
	}
	// Each event carries the balance its points made, so a user's events
	// arrive in the order they were made when the balances rise.
	for _, user := range []string{"u-1001", "u-1002"} {
		got := balances[user]
		if len(got) != 4 || !slices.IsSorted(got) {
			t.Errorf("%s's events arrived with balances %v; want 4, rising", user, got)
		}
	}
}

// A SessionM fault's 4xx goes out as the emulator's own errors do: HTTP
// 200 with "status":"error" under errors-as-200, which it ignored (a QA
// run); a 5xx keeps its status, as SessionM's own do.
func TestSessionMFaultsFollowErrorsAs200(t *testing.T) {
	var opts Options
	opts.SessionM.ErrorsAs200 = true
	_, srv := newTestSandbox(t, opts)
	for status, want := range map[int]int{422: 200, 503: 503} {
		if a := call(t, "POST", srv.URL+"/_sandbox/faults", "", fmt.Sprintf(`{"emulator":"sessionm_core","error_ratio":1,"error_status":%d,"count":1}`, status)); a.status != 201 {
			t.Fatalf("add fault: %d %s", a.status, a.body)
		}
		a := call(t, "POST", tagsURL(srv, anaID), coreAuth, `{"tags":["x"]}`)
		if a.status != want || !strings.Contains(string(a.body), `"status":"error"`) {
			t.Errorf("an injected %d: %d %s; want %d with status error", status, a.status, a.body, want)
		}
	}
}
