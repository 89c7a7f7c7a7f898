package sessionm_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors/sessionm"
	"github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/engine/delivery"
)

// The emulator's answers, read by the connector and judged by the engine,
// with errors_as_200 off and on: a throttled request is retried and a
// refused one dead-lettered either way.
func TestEmulatorAnswerVerdicts(t *testing.T) {
	const user = "3c1d7e2a-32f5-11ef-b3e4-0242ac120002" // Ana, in the shipped seed
	seed, err := emulator.ReadSeed("../../examples/sandbox/sessionm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(seed.Settings.Core.APIKey+":"+seed.Settings.Core.APISecret))
	tagsPath := "/priv/v1/apps/" + seed.Settings.Core.APIKey + "/users/%s/tags"
	tests := []struct {
		name       string
		user, body string
		want       delivery.Verdict
	}{
		{"tagged", user, `{"tags":["x"]}`, delivery.Delivered},
		// sessionm.md §1 (C): 404 = not found by id
		{"unknown user", "nobody", `{"tags":["x"]}`, delivery.Reject},
		// sessionm.md §1 (A): validation is 422, or 200 + status:error
		{"no tags", user, `{}`, delivery.Reject},
		// sessionm.md §7 (A): 429 rate_limited is retried; the bucket holds
		// one request per test, which the ones above took
		{"rate limited", user, `{"tags":["x"]}`, delivery.Retry},
	}
	stopped := func() time.Time { return time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC) } // the bucket never refills
	for _, as200 := range []bool{false, true} {
		e, err := emulator.New(seed, emulator.Options{ErrorsAs200: as200, RateLimit: 1, RateBurst: 3, Now: stopped})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			r := httptest.NewRequest(http.MethodPost, strings.Replace(tagsPath, "%s", tt.user, 1), strings.NewReader(tt.body))
			r.Header.Set("Authorization", auth)
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			e.Core().ServeHTTP(w, r)
			got := delivery.Classify(w.Code, nil, sessionm.Core.ResponseError(w.Code, w.Body.Bytes()))
			if got != tt.want {
				t.Errorf("errors_as_200 %v, %s: HTTP %d %s judged %v, want %v", as200, tt.name, w.Code, w.Body, got, tt.want)
			}
		}
	}
}
