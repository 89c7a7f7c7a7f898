package emulator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const minimalSeed = `settings:
  core: { api_key: k, api_secret: s }
  connect: { key: ck, secret: cs }
  retailer_id: 8f9a2b3c-1d2e-4f50-9a6b-7c8d9e0f1a2b
`

func TestParseSeedErrors(t *testing.T) {
	user := func(id string, extra ...string) string {
		return "  - id: " + id + "\n" + strings.Join(extra, "")
	}
	const id1, id2 = "3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "4d2e8f3b-32f5-11ef-b3e4-0242ac120002"
	const offer = "offers:\n  - offer_id: 1a2b3324-1da6-4e49-b921-afc386dabb60\n    texts: [{ culture: en-US, name: A }]\n"
	tests := []struct {
		name, src string
		want      []string
	}{
		{"minimal seed loads", minimalSeed, nil},
		{"empty file", "", []string{"seed.yaml: the seed file is empty"}},
		{"unknown key", minimalSeed + "userz: []\n", []string{`seed.yaml:5: unknown key "userz"`}},
		{"unknown nested key", minimalSeed + "users:\n" + user(id1, "    emial: a@example.com\n"), []string{`seed.yaml:7: unknown key "emial"`}},
		{"wrong kind", minimalSeed + "users:\n" + user(id1, "    available_points: lots\n"), []string{"seed.yaml:7: expected a whole number, got text (lots)"}},
		{"list for a mapping", "settings: [1]\n", []string{"seed.yaml:1: expected a mapping, got a list"}},
		{"bad date", minimalSeed + "users:\n" + user(id1, "    created_at: yesterday\n"), []string{`seed.yaml:7: "yesterday" is not a date`}},
		{"syntax", "settings: {core: [}\n", []string{"seed.yaml:1: invalid YAML"}},
		{"duplicate key", minimalSeed + "users: []\nusers: []\n", []string{`seed.yaml:6:`, `"users" already defined`}},
		{"missing credentials", "settings: {}\n", []string{"settings.core.api_key: missing", "settings.core.api_secret: missing", "settings.connect.key", "settings.connect.secret", "settings.retailer_id"}},
		{"bad retailer", strings.Replace(minimalSeed, "8f9a2b3c-1d2e-4f50-9a6b-7c8d9e0f1a2b", "ACME", 1), []string{`seed.yaml:4: settings.retailer_id: retailer_id "ACME" must be a lower-case GUID`}},
		{"key with a slash", strings.Replace(minimalSeed, "api_key: k", "api_key: a/b", 1), []string{"settings.core.api_key: the api_key goes into URL paths"}},
		{"duplicate user id", minimalSeed + "users:\n" + user(id1) + user(id1), []string{`seed.yaml:7: users[1].id: duplicate user id`}},
		{"bad user id", minimalSeed + "users:\n" + user("U1"), []string{`users[0].id: id "U1" must be a lower-case uuid`}},
		{"duplicate external id", minimalSeed + "users:\n" + user(id1, "    external_id: x\n") + user(id2, "    external_id: x\n"), []string{`seed.yaml:9: users[1].external_id: duplicate external_id "x"`}},
		{"external id twice as mappings", minimalSeed + "users:\n" + user(id1, "    external_id: x\n") + user(id2, "    external_ids: [y, x]\n"), []string{`seed.yaml:9: users[1].external_ids[1]: duplicate external_id "x" (also users[0])`}},
		{"external id repeated in one user", minimalSeed + "users:\n" + user(id1, "    external_id: x\n    external_ids: [x]\n"), []string{`users[0].external_ids[0]: duplicate external_id "x" (also users[0])`}},
		{"empty mapping", minimalSeed + "users:\n" + user(id1, "    external_ids: [\"\"]\n"), []string{"users[0].external_ids[0]: an external id is empty"}},
		{"generated mapping taken", "settings:\n  generated_users: 5\n" + minimalSeed[len("settings:\n"):] + "users:\n" + user(id1, "    external_ids: [load-000003]\n"), []string{"users[0].external_ids[0]: external_id \"load-000003\" is the external id of a generated user"}},
		{"wallet by a mapping", minimalSeed + "users:\n" + user(id1, "    external_ids: [crm-1]\n") + offer + "wallets:\n  crm-1:\n    - { user_offer_id: 7e4d2c1b-0a9f-4e8d-b7c6-a5b4c3d2e1f0, offer_id: 1a2b3324-1da6-4e49-b921-afc386dabb60, acquire_date: 2026-01-01 }\n", nil},
		{"duplicate email", minimalSeed + "users:\n" + user(id1, "    email: A@example.com\n") + user(id2, "    email: a@example.com\n"), []string{"users[1].email: duplicate email"}},
		{"generated id taken", "settings:\n  generated_users: 5\n" + minimalSeed[len("settings:\n"):] + "users:\n" + user("00000002-32f5-11ef-8000-000000000002"), []string{"is the id of a generated user"}},
		{"generated external id taken", "settings:\n  generated_users: 5\n" + minimalSeed[len("settings:\n"):] + "users:\n" + user(id1, "    external_id: load-000004\n"), []string{"is the external id of a generated user"}},
		{"negative rate_limit", minimalSeed + "  rate_limit: -1\n", []string{"seed.yaml:5: settings.rate_limit: rate_limit must be"}},
		{"infinite rate_limit", minimalSeed + "  rate_limit: .inf\n", []string{"seed.yaml:5: settings.rate_limit"}},
		{"rate_limit as text", minimalSeed + "  rate_limit: fast\n", []string{"seed.yaml:5: expected a number, got text (fast)"}},
		{"negative rate_burst", minimalSeed + "  rate_burst: -2\n", []string{"seed.yaml:5: settings.rate_burst: rate_burst must be 0 or more"}},
		{"negative max_body", minimalSeed + "  max_body: -1\n", []string{"seed.yaml:5: settings.max_body: max_body must be"}},
		{"idempotency as text", minimalSeed + "  idempotency: sometimes\n", []string{"seed.yaml:5: expected true or false"}},
		{"unknown datetime format", minimalSeed + "  connect_datetime_format: rfc1123\n", []string{`seed.yaml:5: settings.connect_datetime_format: connect_datetime_format "rfc1123" is not one of dotnet, dotnet_no_zone, iso`}},
		{"dotnet datetime format", minimalSeed + "  connect_datetime_format: dotnet_no_zone\n", nil},
		{"unknown tag_ttl_on_repost", minimalSeed + "  tag_ttl_on_repost: extend\n", []string{`seed.yaml:5: settings.tag_ttl_on_repost: tag_ttl_on_repost "extend" is not reset or keep`}},
		{"unknown tag_response", minimalSeed + "  tag_response: none\n", []string{`seed.yaml:5: settings.tag_response: tag_response "none" is not tags or status`}},
		{"filter_pending_extended_data as text", minimalSeed + "  filter_pending_extended_data: maybe\n", []string{"seed.yaml:5: expected true or false"}},
		{"tag settings", minimalSeed + "  tag_ttl_on_repost: keep\n  tag_response: status\n  filter_pending_extended_data: false\n", nil},
		{"too many generated users", strings.Replace(minimalSeed, "settings:\n", "settings:\n  generated_users: -1\n", 1), []string{"generated_users must be between 0 and"}},
		{"tag with count and expiry", minimalSeed + "users:\n" + user(id1, "    tags: { a: { count: 1, expires_at: 2030-01-01 } }\n"), []string{"users[0].tags.a: a tag has a count (1 or more) or an expires_at, never both"}},
		{"tag with neither", minimalSeed + "users:\n" + user(id1, "    tags: { a: {} }\n"), []string{"never both"}},
		{"unknown tier", minimalSeed + "users:\n" + user(id1, "    tier: Platinum\n"), []string{`users[0].tier: tier "Platinum" is not a level`}},
		{"bad dob", minimalSeed + "users:\n" + user(id1, "    dob: \"14/05/1990\"\n"), []string{"users[0].dob"}},
		{"offer without texts", minimalSeed + "offers:\n  - offer_id: 1a2b3324-1da6-4e49-b921-afc386dabb60\n", []string{"offers[0]: an offer needs texts"}},
		{"duplicate offer", minimalSeed + offer + "  - offer_id: 1a2b3324-1da6-4e49-b921-afc386dabb60\n    texts: [{ culture: en-US, name: B }]\n", []string{"offers[1].offer_id: duplicate offer_id"}},
		{"duplicate culture", minimalSeed + "offers:\n  - offer_id: 1a2b3324-1da6-4e49-b921-afc386dabb60\n    texts: [{ culture: en-US, name: A }, { culture: EN-us, name: B }]\n", []string{"offers[0].texts[1].culture"}},
		{"unknown offer group", minimalSeed + "offer_groups: [{ id: 00000000-0000-0000-0000-000000000000, name: All }]\n" + offer + "    offer_group_id: 11111111-0000-0000-0000-000000000000\n", []string{"offer_group_id"}},
		{"wallet of nobody", minimalSeed + offer + "wallets:\n  nobody: []\n", []string{`wallets.nobody: wallet owner "nobody"`}},
		{"wallet unknown offer", minimalSeed + "users:\n" + user(id1) + offer + "wallets:\n  " + id1 + ":\n    - { user_offer_id: 7e4d2c1b-0a9f-4e8d-b7c6-a5b4c3d2e1f0, offer_id: 2b3c4d5e-6f70-4811-9a2b-3c4d5e6f7081, acquire_date: 2026-01-01 }\n",
			[]string{"offer_id \"2b3c4d5e-6f70-4811-9a2b-3c4d5e6f7081\" is not in the offers catalogue"}},
		{"wallet without acquire_date", minimalSeed + "users:\n" + user(id1, "    external_id: u-1\n") + offer + "wallets:\n  u-1:\n    - { user_offer_id: 7e4d2c1b-0a9f-4e8d-b7c6-a5b4c3d2e1f0, offer_id: 1a2b3324-1da6-4e49-b921-afc386dabb60 }\n",
			[]string{"wallets.u-1[0]: missing: acquire_date"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSeed("seed.yaml", []byte(tt.src))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if _, err := New(s, Options{}); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "emulator.") || strings.Contains(err.Error(), "int64") {
				t.Errorf("error names a Go type: %v", err)
			}
		})
	}
}

func TestReadSeed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sessionm.yaml")
	if err := os.WriteFile(path, []byte(minimalSeed+"bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSeed(path); err == nil || !strings.Contains(err.Error(), path+":5: unknown key \"bogus\"") {
		t.Fatalf("ReadSeed: %v", err)
	}
	if _, err := ReadSeed(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "seed file") {
		t.Fatalf("missing file: %v", err)
	}
}

// New checks a seed built in Go as ParseSeed checks a file.
func TestNewRefusesBadSeed(t *testing.T) {
	s := shippedSeed(t)
	s.Users = append(s.Users, s.Users[0])
	_, err := New(s, Options{})
	if err == nil || !strings.Contains(err.Error(), "users[4].id: duplicate user id") {
		t.Fatalf("New: %v", err)
	}
}
