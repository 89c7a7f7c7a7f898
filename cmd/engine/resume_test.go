package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A pause outlives a kill -9 of the engine, and an operator ends it from
// the restarted engine's admin listener: the event whose retry waited for
// it, stored before the kill, is delivered at once, where it would have
// waited an hour.
func TestResumeEndsAPauseRestoredAfterAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	h := newCrashHarness(t, crashUsers)
	// One 429 asking for an hour; the emulator takes what comes after it.
	h.sandboxFaults("POST", `{"emulator":"sessionm_core","count":1,"throttle":{"for":"1h"}}`)
	first := h.startEngine(0)
	led := newLedger()
	client := newSenderClient(t)
	if err := led.send(client, first.base, 1); err != nil || led.acceptedCount() != 1 {
		t.Fatalf("the webhook was not accepted: %v %s", err, led.why())
	}
	waitFor(t, "the pause after the 429", func() bool {
		return strings.Contains(get(t, first.base+"/metrics").body, `engine_connection_pauses_total{connection="sessionm_core"} 1`)
	})
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited

	second := h.startEngine(first.port)
	admin := adminOf(t, second)
	if st := get(t, admin+"/status"); !strings.Contains(st.body, `"target_paused_until"`) {
		t.Fatalf("the restarted engine shows no pause: %s", st.body)
	}
	resp, err := http.Post(admin+"/connections/sessionm_core/resume", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"paused_until"`) {
		t.Fatalf("resume answered %d %s; want the restored pause it ended", resp.StatusCode, body)
	}
	h.checkDelivered(second, led, 0)
	if !strings.Contains(second.stderr.String(), "connection resumed by an operator") {
		t.Errorf("the log does not say the connection was resumed:\n%s", second.stderr.String())
	}
}

type got struct {
	status int
	body   string
}

func get(t *testing.T, url string) got {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return got{resp.StatusCode, string(b)}
}
