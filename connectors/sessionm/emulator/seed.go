package emulator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loyalty-connector/engine/engine/yamlpos"
	"github.com/loyalty-connector/engine/internal/ids"
)

// Seed is the emulator's starting state: credentials, users, the offer
// catalogue and the wallets. examples/sandbox/sessionm.yaml is the shipped one.
type Seed struct {
	Settings        Settings            `yaml:"settings"`
	Tiers           *TierSystem         `yaml:"tiers,omitempty"`
	Users           []SeedUser          `yaml:"users"`
	OfferGroups     []SeedOfferGroup    `yaml:"offer_groups"`
	OfferCategories []SeedOfferCategory `yaml:"offer_categories"`
	Offers          []SeedOffer         `yaml:"offers"`
	// Wallets maps a user (SessionM id or external id) to the user-offers
	// it holds at start, in the order get_user_offers returns them.
	Wallets map[string][]SeedUserOffer `yaml:"wallets"`
}

// Settings are the tenant-wide values.
type Settings struct {
	Core    CoreCredentials    `yaml:"core"`
	Connect ConnectCredentials `yaml:"connect"`
	// RetailerID is the Connect tenant GUID every Connect body must carry
	// (sessionm.md §1, §4, C).
	RetailerID string `yaml:"retailer_id"`
	// GeneratedUsers adds this many synthetic users for load tests: SessionM
	// id GeneratedUserID(i), external id GeneratedExternalID(i), an empty
	// wallet and no tags. They cost no memory until a request changes them.
	GeneratedUsers int `yaml:"generated_users"`
	// ErrorsAs200 is the literal documented behaviour: an error is HTTP
	// 200 with "status":"error", except 401, 404, 5xx and 429, which keep
	// their status (sessionm.md §1, C/A). Same as Options.ErrorsAs200.
	ErrorsAs200 bool `yaml:"errors_as_200"`
	// IncludeRedeemed makes get_user_offers return redeemed user-offers
	// too. Off (the default), it returns the offers "in the issued state"
	// (sessionm.md §4, C): redeemed ones are left out, expired ones stay.
	IncludeRedeemed bool `yaml:"include_redeemed"`
	// TagTTLOnRepost is what POSTing ttl for a tag that is already a live
	// expiring tag does to its expiry: "reset" (the default; "" too)
	// restarts it from now, "keep" leaves the expiry it had. No source
	// says which (sessionm.md §2, §8, A).
	TagTTLOnRepost string `yaml:"tag_ttl_on_repost"`
	// TagResponse is the body that answers a tags POST: "tags" (the
	// default; "" too) is the assumed {"status":"ok","tags":{name:{...}}}
	// with every live tag, "status" only the Core envelope
	// {"status":"ok"}, all the docs confirm (sessionm.md §1 C, §2 A), so
	// a client can be tested for not relying on the rest. GET keeps the
	// tags either way: it is the only way to read them.
	TagResponse string `yaml:"tag_response"`
	// FilterPendingExtendedData: true (the default; missing too) makes
	// get_user_offers leave out user-offers still pending extended data
	// unless include_pending_extended_data is true; false returns them
	// whatever the flag says. The field is C, what it does is not
	// (sessionm.md §4, §8, A).
	FilterPendingExtendedData *bool `yaml:"filter_pending_extended_data"`

	// The assumptions below are also fields of Options, which win when
	// they are not zero.

	// RateLimit is the token bucket per Core api key and per Connect key in
	// requests per second; 0 (the default) turns it off (sessionm.md §7, A).
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is the bucket size; 0 means max(1, rate_limit).
	RateBurst int `yaml:"rate_burst"`
	// Idempotency honours an Idempotency-Key header on POST and PUT, which
	// no real endpoint has (sessionm.md §7, A); off by default.
	Idempotency bool `yaml:"idempotency"`
	// MaxBody is the request body limit in bytes; 0 means 1 MiB (A).
	MaxBody int64 `yaml:"max_body"`
	// ConnectDatetimeFormat is how Connect writes datetimes: "iso" (the
	// default), "dotnet" or "dotnet_no_zone" (sessionm.md §4, §8, A); see
	// Options.ConnectDatetimeFormat.
	ConnectDatetimeFormat string `yaml:"connect_datetime_format"`
}

// CoreCredentials are the Core app's key and secret (Digital Properties):
// the key is in every Core path and is the Basic user name (sessionm.md §1, C).
type CoreCredentials struct {
	APIKey    string `yaml:"api_key"`
	APISecret string `yaml:"api_secret"`
}

// ConnectCredentials build the Connect Basic authorization string
// base64(key:secret) (sessionm.md §1, C/O).
type ConnectCredentials struct {
	Key    string `yaml:"key"`
	Secret string `yaml:"secret"`
}

// TierSystem is the tenant's tier ladder; users name a level by name.
// It feeds the user object's tier_levels (sessionm.md §3, O).
type TierSystem struct {
	SystemID string      `yaml:"system_id"`
	Levels   []TierLevel `yaml:"levels"`
}

// TierLevel is one rung of the ladder; the next rank is next_tier_overview.
type TierLevel struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	Rank int    `yaml:"rank"`
}

// SeedUser is a Core user (sessionm.md §3, O). Omitted booleans opted_in and
// activated default to true; account_status defaults to "good".
type SeedUser struct {
	ID string `yaml:"id"`
	// ExternalID is the external id the REST API answers, the most
	// recently updated mapping (sessionm.md §2, O).
	ExternalID string `yaml:"external_id"`
	// ExternalIDs are further external-id mappings of the same user: one
	// SessionM user can hold several (sessionm.md §2, O). The external-id
	// paths resolve each of them; the user object still answers one
	// external_id, ExternalID, or the first of these when it is empty.
	ExternalIDs     []string       `yaml:"external_ids"`
	Email           string         `yaml:"email"`
	FirstName       string         `yaml:"first_name"`
	LastName        string         `yaml:"last_name"`
	OptedIn         *bool          `yaml:"opted_in"`
	Activated       *bool          `yaml:"activated"`
	DOB             string         `yaml:"dob"`
	Address         string         `yaml:"address"`
	City            string         `yaml:"city"`
	Zip             string         `yaml:"zip"`
	State           string         `yaml:"state"`
	Country         string         `yaml:"country"`
	DMA             string         `yaml:"dma"`
	AvailablePoints int64          `yaml:"available_points"`
	TotalPoints     int64          `yaml:"total_points"`
	TestPoints      int64          `yaml:"test_points"`
	TierPoints      float64        `yaml:"tier_points"`
	Tier            string         `yaml:"tier"`
	TierJoinDate    *Time          `yaml:"tier_join_date"`
	ProxyIDs        []string       `yaml:"proxy_ids"`
	CreatedAt       *Time          `yaml:"created_at"`
	UpdatedAt       *Time          `yaml:"updated_at"`
	RegisteredAt    *Time          `yaml:"registered_at"`
	Suspended       bool           `yaml:"suspended"`
	TestAccount     bool           `yaml:"test_account"`
	AccountStatus   string         `yaml:"account_status"`
	ProfilePhotoURL string         `yaml:"profile_photo_url"`
	ReferrerCode    string         `yaml:"referrer_code"`
	UserProfile     map[string]any `yaml:"user_profile"`
	PhoneNumbers    []Phone        `yaml:"phone_numbers"`
	// Tags are present at start: each has a count or an expires_at, never
	// both (sessionm.md §2, C).
	Tags map[string]SeedTag `yaml:"tags"`
}

// Phone is one entry of phone_numbers (sessionm.md §3, O).
type Phone struct {
	PhoneNumber       string   `yaml:"phone_number" json:"phone_number"`
	PhoneType         string   `yaml:"phone_type" json:"phone_type"`
	PreferenceFlags   []string `yaml:"preference_flags" json:"preference_flags"`
	VerifiedOwnership bool     `yaml:"verified_ownership" json:"verified_ownership"`
}

// SeedTag is a counter tag (count) or an expiring tag (expires_at).
type SeedTag struct {
	Count     int   `yaml:"count"`
	ExpiresAt *Time `yaml:"expires_at"`
}

// SeedOfferGroup is an entry of payload.offer_groups (sessionm.md §4, C).
type SeedOfferGroup struct {
	ID        string `yaml:"id"`
	Name      string `yaml:"name"`
	SortOrder int    `yaml:"sort_order"`
}

// SeedOfferCategory is an entry of payload.offer_categories (sessionm.md §4, C/I).
type SeedOfferCategory struct {
	ID         string   `yaml:"id"`
	Name       string   `yaml:"name"`
	SortOrder  int      `yaml:"sort_order"`
	OfferTypes []string `yaml:"offer_types"`
}

// SeedOffer is a catalogue offer. Versions of one offer share root_offer_id
// (sessionm.md §4, C); root_offer_id defaults to offer_id.
type SeedOffer struct {
	OfferID      string `yaml:"offer_id"`
	RootOfferID  string `yaml:"root_offer_id"`
	OfferGroupID string `yaml:"offer_group_id"`
	OfferType    string `yaml:"offer_type"`
	// Texts per culture; the first is the last-resort fallback (sessionm.md §7, A).
	Texts               []SeedOfferText `yaml:"texts"`
	PosDiscountID       string          `yaml:"pos_discount_id"`
	StartDate           *Time           `yaml:"start_date"`
	EndDate             *Time           `yaml:"end_date"`
	RedemptionStartDate *Time           `yaml:"redemption_start_date"`
	RedemptionEndDate   *Time           `yaml:"redemption_end_date"`
	// ExpiresAfterDays sets expiration_date = acquire_date + days on issue;
	// without it an issued offer expires at redemption_end_date, or never
	// (A: the real validity rules are not public).
	ExpiresAfterDays int `yaml:"expires_after_days"`
	// RequiresExtendedData issues user-offers with pending_extended_data
	// true (sessionm.md §4, O; A).
	RequiresExtendedData bool        `yaml:"requires_extended_data"`
	Media                []SeedMedia `yaml:"media"`
}

// SeedOfferText is the name, description and terms in one culture.
type SeedOfferText struct {
	Culture     string `yaml:"culture"`
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Terms       string `yaml:"terms"`
}

// SeedMedia is an offer's media item (sessionm.md §4, I): content_type 1
// image, 2 video, 4 audio, 5 web link; the logo is category_name "Logo" (A).
type SeedMedia struct {
	ID           string `yaml:"id"`
	CategoryID   string `yaml:"category_id"`
	CategoryName string `yaml:"category_name"`
	URI          string `yaml:"uri"`
	ContentType  int    `yaml:"content_type"`
}

// SeedUserOffer is one offer in a wallet (sessionm.md §4). is_redeemable
// defaults to true unless redeem_date is set; quantity to 1;
// user_offer_status to 1.
type SeedUserOffer struct {
	UserOfferID         string  `yaml:"user_offer_id"`
	OfferID             string  `yaml:"offer_id"`
	AcquireDate         *Time   `yaml:"acquire_date"`
	ExpirationDate      *Time   `yaml:"expiration_date"`
	RedeemDate          *Time   `yaml:"redeem_date"`
	IsRedeemable        *bool   `yaml:"is_redeemable"`
	PendingExtendedData bool    `yaml:"pending_extended_data"`
	Quantity            int     `yaml:"quantity"`
	PointsSpent         float64 `yaml:"points_spent"`
	CustomData          *string `yaml:"custom_data"`
	UserOfferStatus     int     `yaml:"user_offer_status"`
	StoreID             *string `yaml:"store_id"`
}

// Time is a seed timestamp, written as ISO-8601 ("2026-11-20T14:03:11Z"),
// as Core writes it ("2026-11-20 14:03:11", UTC) or as a date ("2026-11-20").
type Time struct{ time.Time }

var seedTimeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"}

// UnmarshalYAML parses the layouts above; the error names the line.
func (t *Time) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		for _, layout := range seedTimeLayouts {
			if v, err := time.Parse(layout, n.Value); err == nil {
				t.Time = v.UTC()
				return nil
			}
		}
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a date; write 2026-11-20T14:03:11Z, 2026-11-20 14:03:11 or 2026-11-20", n.Line, n.Value)}}
}

// maxGeneratedUsers bounds generated_users: ids are 8 hex digits and the
// state of every touched user is kept in memory.
const maxGeneratedUsers = 10_000_000

// ReadSeed reads and checks a seed file.
func ReadSeed(path string) (Seed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("seed file: %w", err)
	}
	return ParseSeed(path, data)
}

// ParseSeed parses a seed file's content strictly: unknown keys, wrong kinds
// of values and inconsistent data are errors naming file:line.
func ParseSeed(name string, data []byte) (Seed, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Seed{}, fmt.Errorf("%s: the seed file is empty; it needs at least settings (credentials and retailer_id)", name)
	}
	doc, err := yamlpos.Parse(name, data)
	if err != nil {
		var ye *yamlpos.Error
		if errors.As(err, &ye) {
			return Seed{}, fmt.Errorf("%s:%d: %s", name, ye.Line, ye.Message)
		}
		return Seed{}, fmt.Errorf("%s: %w", name, err)
	}
	var seed Seed
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(&seed)
	if errors.Is(err, io.EOF) {
		return Seed{}, fmt.Errorf("%s: the seed file holds only comments; it needs at least settings (credentials and retailer_id)", name)
	}
	if err != nil {
		return Seed{}, yamlError(name, err)
	}
	if problems := checkSeed(&seed); len(problems) > 0 {
		errs := make([]error, 0, len(problems))
		for _, p := range problems {
			line := 0
			if n, _ := doc.Lookup(p.path); n != nil {
				line = n.Line
			}
			errs = append(errs, fmt.Errorf("%s:%d: %s: %s", name, line, p.path, p.msg))
		}
		return Seed{}, errors.Join(errs...)
	}
	return seed, nil
}

// yamlError rewrites yaml.v3's messages as file:line problems without Go
// type names.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := err.Error()
		if line, rest := yamlpos.SplitLine(msg); line != "" {
			return fmt.Errorf("%s:%s: invalid YAML: %s", name, line, rest)
		}
		return fmt.Errorf("%s: invalid YAML: %s", name, strings.TrimPrefix(msg, "yaml: "))
	}
	errs := make([]error, 0, len(te.Errors))
	for _, e := range te.Errors {
		line, msg := yamlpos.TypeProblem(e)
		if line == "" {
			line = "?"
		}
		errs = append(errs, fmt.Errorf("%s:%s: %s", name, line, msg))
	}
	return errors.Join(errs...)
}

type seedProblem struct {
	path yamlpos.Path
	msg  string
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// checkSeed finds every inconsistency New would refuse, with its path.
func checkSeed(s *Seed) []seedProblem {
	var ps []seedProblem
	add := func(msg string, path ...any) { ps = append(ps, seedProblem{yamlpos.Path(path), msg}) }
	st := &s.Settings
	if st.Core.APIKey == "" {
		add("missing: the Core api_key", "settings", "core", "api_key")
	} else if strings.ContainsAny(st.Core.APIKey, "/:?#% ") {
		add("the api_key goes into URL paths and the Basic user name; use letters, digits, '-' and '_'", "settings", "core", "api_key")
	}
	if st.Core.APISecret == "" {
		add("missing: the Core api_secret", "settings", "core", "api_secret")
	}
	if st.Connect.Key == "" || strings.Contains(st.Connect.Key, ":") {
		add("missing or invalid: the Connect key (no ':')", "settings", "connect", "key")
	}
	if st.Connect.Secret == "" {
		add("missing: the Connect secret", "settings", "connect", "secret")
	}
	if !uuidRE.MatchString(st.RetailerID) {
		add(fmt.Sprintf("retailer_id %q must be a lower-case GUID such as 8f9a2b3c-1d2e-4f50-9a6b-7c8d9e0f1a2b", st.RetailerID), "settings", "retailer_id")
	}
	if st.GeneratedUsers < 0 || st.GeneratedUsers > maxGeneratedUsers {
		add(fmt.Sprintf("generated_users must be between 0 and %d", maxGeneratedUsers), "settings", "generated_users")
	}
	if !(st.RateLimit >= 0) || math.IsInf(st.RateLimit, 0) {
		add("rate_limit must be a number of requests per second, 0 or more (0 turns the limit off)", "settings", "rate_limit")
	}
	if st.RateBurst < 0 {
		add("rate_burst must be 0 or more (0 means max(1, rate_limit))", "settings", "rate_burst")
	}
	if st.MaxBody < 0 {
		add("max_body must be a number of bytes, 0 or more (0 means 1 MiB)", "settings", "max_body")
	}
	if v := st.TagTTLOnRepost; v != "" && v != "reset" && v != "keep" {
		add(fmt.Sprintf("tag_ttl_on_repost %q is not reset or keep", v), "settings", "tag_ttl_on_repost")
	}
	if v := st.TagResponse; v != "" && v != "tags" && v != "status" {
		add(fmt.Sprintf("tag_response %q is not tags or status", v), "settings", "tag_response")
	}
	if _, ok := connectLayouts[st.ConnectDatetimeFormat]; !ok && st.ConnectDatetimeFormat != "" {
		add(fmt.Sprintf("connect_datetime_format %q is not one of %s", st.ConnectDatetimeFormat, datetimeFormatNames()), "settings", "connect_datetime_format")
	}
	gen := st.GeneratedUsers

	levels := map[string]bool{}
	if s.Tiers != nil {
		if !uuidRE.MatchString(s.Tiers.SystemID) {
			add("system_id must be a lower-case uuid", "tiers", "system_id")
		}
		ids := map[string]bool{}
		for i, l := range s.Tiers.Levels {
			if !uuidRE.MatchString(l.ID) {
				add("id must be a lower-case uuid", "tiers", "levels", i, "id")
			} else if ids[l.ID] {
				add(fmt.Sprintf("duplicate tier level id %q", l.ID), "tiers", "levels", i, "id")
			}
			ids[l.ID] = true
			if l.Name == "" || levels[l.Name] {
				add(fmt.Sprintf("tier level name %q is empty or used twice", l.Name), "tiers", "levels", i, "name")
			}
			levels[l.Name] = true
		}
	}

	seenIDs, exts, emails := map[string]int{}, map[string]int{}, map[string]int{}
	for i, u := range s.Users {
		switch {
		case !uuidRE.MatchString(u.ID):
			add(fmt.Sprintf("id %q must be a lower-case uuid such as 3c1d7e2a-32f5-11ef-b3e4-0242ac120002", u.ID), "users", i, "id")
		case generatedID(u.ID, gen):
			add(fmt.Sprintf("id %q is the id of a generated user; pick another", u.ID), "users", i, "id")
		default:
			if j, dup := seenIDs[u.ID]; dup {
				add(fmt.Sprintf("duplicate user id %q (also users[%d])", u.ID, j), "users", i, "id")
			}
			seenIDs[u.ID] = i
		}
		checkExt := func(ext string, path ...any) {
			if _, ok := ids.ParseGeneratedExternalID(ext, gen); ok {
				add(fmt.Sprintf("external_id %q is the external id of a generated user; pick another", ext), path...)
			} else if j, dup := exts[ext]; dup {
				add(fmt.Sprintf("duplicate external_id %q (also users[%d]); each mapping names one user", ext, j), path...)
			}
			exts[ext] = i
		}
		if u.ExternalID != "" {
			checkExt(u.ExternalID, "users", i, "external_id")
		}
		for j, ext := range u.ExternalIDs {
			if ext == "" {
				add("an external id is empty", "users", i, "external_ids", j)
				continue
			}
			checkExt(ext, "users", i, "external_ids", j)
		}
		if u.Email != "" {
			key := strings.ToLower(u.Email)
			if _, ok := ids.ParseGeneratedEmail(key, gen); ok {
				add(fmt.Sprintf("email %q is the email of a generated user; pick another", u.Email), "users", i, "email")
			} else if j, dup := emails[key]; dup {
				add(fmt.Sprintf("duplicate email %q (also users[%d]); emails are unique per tenant", u.Email, j), "users", i, "email")
			}
			emails[key] = i
		}
		if u.DOB != "" {
			if _, err := time.Parse("2006-01-02", u.DOB); err != nil {
				add(fmt.Sprintf("dob %q must be YYYY-MM-DD", u.DOB), "users", i, "dob")
			}
		}
		if u.Tier != "" && !levels[u.Tier] {
			add(fmt.Sprintf("tier %q is not a level under tiers.levels", u.Tier), "users", i, "tier")
		}
		for _, name := range slices.Sorted(maps.Keys(u.Tags)) {
			t := u.Tags[name]
			switch {
			case name == "":
				add("a tag name is empty", "users", i, "tags")
			case t.Count > 0 && t.ExpiresAt != nil, t.Count <= 0 && t.ExpiresAt == nil:
				add("a tag has a count (1 or more) or an expires_at, never both (sessionm.md §2)", "users", i, "tags", name)
			}
		}
	}

	groups := map[string]bool{}
	for i, g := range s.OfferGroups {
		if !uuidRE.MatchString(g.ID) || groups[g.ID] {
			add(fmt.Sprintf("offer group id %q must be a unique lower-case uuid", g.ID), "offer_groups", i, "id")
		}
		groups[g.ID] = true
	}
	cats := map[string]bool{}
	for i, c := range s.OfferCategories {
		if !uuidRE.MatchString(c.ID) || cats[c.ID] {
			add(fmt.Sprintf("offer category id %q must be a unique lower-case uuid", c.ID), "offer_categories", i, "id")
		}
		cats[c.ID] = true
	}
	offers := map[string]int{}
	for i, o := range s.Offers {
		if !uuidRE.MatchString(o.OfferID) {
			add(fmt.Sprintf("offer_id %q must be a lower-case uuid", o.OfferID), "offers", i, "offer_id")
		} else if j, dup := offers[o.OfferID]; dup {
			add(fmt.Sprintf("duplicate offer_id %q (also offers[%d])", o.OfferID, j), "offers", i, "offer_id")
		}
		offers[o.OfferID] = i
		if o.RootOfferID != "" && !uuidRE.MatchString(o.RootOfferID) {
			add("root_offer_id must be a lower-case uuid", "offers", i, "root_offer_id")
		}
		if o.OfferGroupID != "" && len(s.OfferGroups) > 0 && !groups[o.OfferGroupID] {
			add(fmt.Sprintf("offer_group_id %q is not under offer_groups", o.OfferGroupID), "offers", i, "offer_group_id")
		}
		if len(o.Texts) == 0 {
			add("an offer needs texts: at least one culture with a name", "offers", i)
		}
		cultures := map[string]bool{}
		for j, t := range o.Texts {
			c := strings.ToLower(t.Culture)
			if c == "" || cultures[c] {
				add(fmt.Sprintf("culture %q is empty or given twice", t.Culture), "offers", i, "texts", j, "culture")
			}
			cultures[c] = true
			if t.Name == "" {
				add("missing: the offer name in this culture", "offers", i, "texts", j)
			}
		}
		if o.ExpiresAfterDays < 0 || o.ExpiresAfterDays > 36500 {
			add("expires_after_days must be between 0 and 36500", "offers", i, "expires_after_days")
		}
		if o.StartDate != nil && o.EndDate != nil && o.EndDate.Before(o.StartDate.Time) {
			add("end_date is before start_date", "offers", i, "end_date")
		}
		for j, m := range o.Media {
			if m.URI == "" {
				add("missing: the media uri", "offers", i, "media", j)
			}
		}
	}

	userOffers := map[string]bool{}
	for _, owner := range slices.Sorted(maps.Keys(s.Wallets)) {
		if _, byID := seenIDs[owner]; !byID {
			if _, byExt := exts[owner]; !byExt {
				add(fmt.Sprintf("wallet owner %q is neither the id nor an external id of a seeded user", owner), "wallets", owner)
			}
		}
		for j, uo := range s.Wallets[owner] {
			if !uuidRE.MatchString(uo.UserOfferID) || userOffers[uo.UserOfferID] {
				add(fmt.Sprintf("user_offer_id %q must be a unique lower-case uuid", uo.UserOfferID), "wallets", owner, j, "user_offer_id")
			}
			userOffers[uo.UserOfferID] = true
			if _, ok := offers[uo.OfferID]; !ok {
				add(fmt.Sprintf("offer_id %q is not in the offers catalogue", uo.OfferID), "wallets", owner, j, "offer_id")
			}
			if uo.AcquireDate == nil {
				add("missing: acquire_date", "wallets", owner, j)
			}
			if uo.Quantity < 0 {
				add("quantity must be 1 or more", "wallets", owner, j, "quantity")
			}
		}
	}
	return ps
}

// Generated users (settings.generated_users): deterministic ids, so a load
// test can address user i without asking the emulator. The formulas are
// internal/ids', shared with the Braze emulator.

// GeneratedUserID is the SessionM id of generated user i (0-based): a
// v1-shaped lower-case uuid, xxxxxxxx-32f5-11ef-8000-xxxxxxxxxxxx
// (ids.GeneratedSessionMID). cmd/loadtest uses it.
func GeneratedUserID(i int) string { return ids.GeneratedSessionMID(i) }

// GeneratedExternalID is the external id of generated user i (0-based),
// load-000000 first; the Braze external_id is the same. cmd/loadtest uses it.
func GeneratedExternalID(i int) string { return ids.GeneratedExternalID(i) }

// generatedID reports whether id belongs to one of n generated users.
func generatedID(id string, n int) bool {
	_, ok := ids.ParseGeneratedSessionMID(id, n)
	return ok
}
