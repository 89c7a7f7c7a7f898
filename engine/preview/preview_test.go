package preview

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// One Previewer serves many previews at once (the playground does): each
// gets its own user's wallet, and the shared cache keys by URL (go test
// -race).
func TestConcurrentPreviews(t *testing.T) {
	p, closeFn, err := Setup(Mode{Name: "sandbox"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	src, err := os.ReadFile("../../examples/templates/partner-wallet.liquid")
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{
		"3c1d7e2a-32f5-11ef-b3e4-0242ac120002": "You have 1350 points.",
		"6f40a15d-32f5-11ef-b3e4-0242ac120002": "You have 5200 points.",
	}
	var wg sync.WaitGroup
	for i := range 16 {
		for id, want := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := p.Render(context.Background(), Input{Template: string(src), User: map[string]any{"user_id": id}, Trigger: map[string]any{"offer_id": fmt.Sprint(i)}})
				if len(res.Errors) > 0 || !strings.Contains(res.Output, want) || !strings.Contains(res.Output, "Your new offer: "+fmt.Sprint(i)) || len(res.Calls) != 1 || res.Calls[0].Status != 200 {
					t.Errorf("user %s: %+v", id, res)
				}
			}()
		}
	}
	wg.Wait()
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		err  string
	}{
		{"", Mode{Name: "sandbox"}, ""},
		{"sandbox", Mode{Name: "sandbox"}, ""},
		{"live", Mode{Name: "live"}, ""},
		{"fixtures=some/dir", Mode{Name: "fixtures", Dir: "some/dir"}, ""},
		{"fixtures:d", Mode{Name: "fixtures", Dir: "d"}, ""},
		{"fixtures", Mode{}, "fixtures needs a folder"},
		{"fixtures=", Mode{}, "fixtures needs a folder"},
		{"real", Mode{}, `not "real"`},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseMode(%q) = %+v, %v; want %+v, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}
