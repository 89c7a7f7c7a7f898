package emulator

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The engine's load tests send ~300 trigger calls/s of 50 recipients and
// /users/track arrays of 75 over 100,000 generated users.
func BenchmarkTrigger50(b *testing.B) {
	e, _ := newEmuB(b)
	h := e.Handler()
	var rs []string
	for j := 0; j < 50; j++ {
		rs = append(rs, fmt.Sprintf(`{"external_user_id":"load-%06d","trigger_properties":{"offer_id":"1a2b","points":"%d"}}`, j*1999, j))
	}
	body := `{"campaign_id":"` + winterCampaign + `","trigger_properties":{"campaign_name":"Winter"},"recipients":[` + strings.Join(rs, ",") + `]}`
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/campaigns/trigger/send", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 201 {
			b.Fatal(w.Body)
		}
	}
}

func BenchmarkTrack75(b *testing.B) {
	e, _ := newEmuB(b)
	h := e.Handler()
	body := `{"attributes":` + objects(75, `{"external_id":"load-%06d","points":{"inc":1},"tier":"gold"}`) +
		`,"events":` + objects(75, `{"external_id":"load-%06d","name":"visit","time":"2026-01-01T00:00:00Z","properties":{"store":"madrid"}}`) + `}`
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/users/track", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 201 {
			b.Fatal(w.Body)
		}
	}
}

func newEmuB(b *testing.B) (*Emulator, error) {
	seed, err := ReadSeed(seedPath)
	if err != nil {
		b.Fatal(err)
	}
	seed.Settings.GeneratedUsers = 100_000
	big := &Limit{Requests: 1 << 30, Window: time.Hour}
	seed.Settings.Limits = SeedLimits{Trigger: big, Broadcast: big, UsersTrack: big}
	return New(seed, Options{})
}
