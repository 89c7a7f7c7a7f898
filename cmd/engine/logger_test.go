package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/secrets"
)

// textHiding prints itself hidden, but marshals to its value, which is
// what slog's handlers write.
type textHiding struct{ v string }

func (h textHiding) String() string               { return "hidden" }
func (h textHiding) MarshalText() ([]byte, error) { return []byte(h.v), nil }

// Every line engine run logs goes through the masker, whatever a call
// site passed: a message, a string, an error, a value printed with %v.
// Values without a secret keep their own form.
func TestLoggerMasksSecretsWhereverTheyAre(t *testing.T) {
	const secret = "s3cr3t-value-42"
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			masker := &secrets.Masker{}
			logger, err := newLogger(&out, format, "debug", masker)
			if err != nil {
				t.Fatal(err)
			}
			// Added after the logger is made, as the loader does.
			masker.Add(secret)
			pointed := secret
			logger.Debug("compared "+secret,
				"why", `event.token == "`+secret+`" is false`,
				"error", errors.New("calling with "+secret),
				"list", []string{"a", secret},
				"bytes", []byte("raw "+secret),
				"raw", json.RawMessage(`{"k":"`+secret+`"}`),
				"tags", []string{"kept", "as a list"},
				// Printed by the handler otherwise than by their text.
				"pointer", &pointed,
				"struct", struct{ Token *string }{&pointed},
				"marshals", textHiding{secret},
				"in", 1500*time.Millisecond, "n", 3)
			line := out.String()
			if strings.Contains(line, secret) {
				t.Fatalf("the line holds the secret: %s", line)
			}
			// The text format prints a pointer as its address.
			want := map[string]int{"text": 7, "json": 9}[format]
			if got := strings.Count(line, "****"); got != want {
				t.Errorf("%d masks, want %d (message, why, error, list, bytes, raw, marshals, and in JSON pointer and struct): %s", got, want, line)
			}
			if format == "json" {
				var fields map[string]any
				if err := json.Unmarshal(out.Bytes(), &fields); err != nil {
					t.Fatal(err)
				}
				if _, ok := fields["tags"].([]any); !ok || fields["in"] != "1.5s" || fields["n"] != 3.0 {
					t.Errorf("values without a secret changed form: tags %v, in %v, n %v", fields["tags"], fields["in"], fields["n"])
				}
			}
		})
	}
}
