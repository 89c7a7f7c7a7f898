package engine

import (
	"testing"
	"time"
)

// A target request has the pipeline's delivery.timeout when it sets one,
// else its connection's timeout, else 10 s.
func TestTargetTimeout(t *testing.T) {
	tests := []struct {
		name                 string
		connection, delivery string // the timeouts as written, "" to leave them out
		want                 time.Duration
	}{
		{"neither", "", "", DefaultTimeout},
		{"the connection's", "300ms", "", 300 * time.Millisecond},
		{"the pipeline's", "", "2s", 2 * time.Second},
		{"the pipeline's over the connection's", "300ms", "20s", 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			conns := "connections:\n  api:\n    type: http\n    base_url: https://api.example.com\n"
			if tt.connection != "" {
				conns += "    timeout: " + tt.connection + "\n"
			}
			pipeline := "source: { type: http, path: /hooks/t }\ntarget: { connection: api, method: POST, path: /sink, body: { n: 1 } }\n"
			if tt.delivery != "" {
				pipeline += "delivery: { timeout: " + tt.delivery + " }\n"
			}
			writeFiles(t, dir, map[string]string{ConnectionsFileName: conns, "t.yaml": pipeline})
			p := loadOne(t, dir)
			if got := p.TargetTimeout(); got != tt.want {
				t.Errorf("target timeout %s; want %s", got, tt.want)
			}
		})
	}
}
