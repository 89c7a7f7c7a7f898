package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
)

// brazeCampaignID is the seeded Braze campaign F4 events name.
const brazeCampaignID = "9b1f3c2e-4d5a-4b6c-8d7e-0f1a2b3c4d5e"

// scenario is one flow under load: the webhook each event sends, and how
// to recognise its delivery in the emulators' journal.
type scenario struct {
	pipeline string
	// webhook path and body of event i for user u.
	path func(i, u int) string
	body func(i, u int) []byte
	// idempotencyKey, when set, gives event i its Idempotency-Key header.
	idempotencyKey func(i int) string
	header         http.Header
	// journalPath selects the target requests in /_sandbox/requests.
	journalPath string
	// recipients returns the users a target request delivered to.
	recipients func(e *journalEntry) ([]int, error)
	// readsBody: recipients reads the request's body (the tracker asks
	// the journal for bodies only then).
	readsBody bool
	// maxRecipients is the most events one target request carries; over
	// 1, the report gives the recipients per request.
	maxRecipients int
}

// triggerRecipientsMax is the most recipients Braze takes in one campaign
// trigger request.
const triggerRecipientsMax = 50

// lookup resolves a setting as engine run does: environment first, then
// the --env-file files in order.
type lookup func(name string) (string, bool)

func needSetting(get lookup, name string) (string, error) {
	v, ok := get(name)
	if !ok || v == "" {
		return "", fmt.Errorf("%s is not set in the environment or the env files", name)
	}
	return v, nil
}

// f1 is a Braze webhook campaign tagging users in SessionM
// (pipelines/braze-segment-to-sessionm-tags.yaml): one webhook and one
// SessionM tags call per user, the user id in both paths.
func f1(get lookup, runID string) (*scenario, error) {
	key, err := needSetting(get, "SESSIONM_API_KEY")
	if err != nil {
		return nil, err
	}
	secret, err := needSetting(get, "SESSIONM_API_SECRET")
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(key+":"+secret)))
	h.Set("Content-Type", "application/json")
	body := []byte(`{"tags":["bench"],"ttl":2592000}`)
	prefix := "/sessionm/core/priv/v1/apps/" + key + "/users/"
	return &scenario{
		pipeline: "braze-segment-to-sessionm-tags",
		path:     func(_, u int) string { return "/hooks/braze/tags/" + sessionmemu.GeneratedUserID(u) },
		body:     func(int, int) []byte { return body },
		// As a Braze campaign would send {{campaign.${dispatch_id}}}-{{${braze_id}}}.
		idempotencyKey: func(i int) string { return runID + "-" + strconv.Itoa(i) },
		header:         h,
		journalPath:    prefix + "*",
		maxRecipients:  1,
		recipients: func(e *journalEntry) ([]int, error) {
			id, ok := strings.CutPrefix(e.Path, prefix)
			id, ok2 := strings.CutSuffix(id, "/tags")
			u, ok3 := generatedUserIndex(id)
			if !ok || !ok2 || !ok3 {
				return nil, fmt.Errorf("journal entry %d: %s is not a generated user's tags path", e.ID, e.Path)
			}
			return []int{u}, nil
		},
	}, nil
}

// generatedUserIndex inverts sessionmemu.GeneratedUserID.
func generatedUserIndex(id string) (int, bool) {
	head, _, ok := strings.Cut(id, "-")
	if !ok || len(head) != 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(head, 16, 32)
	if err != nil || sessionmemu.GeneratedUserID(int(n)) != id {
		return 0, false
	}
	return int(n), true
}

// f4 is SessionM "offer issued" events triggering a Braze campaign
// (pipelines/offer-issued-to-braze-campaign.yaml): a wallet lookup per
// event, then Braze trigger requests of up to 50 recipients.
func f4(get lookup, runID, examplePath string) (*scenario, error) {
	token, err := needSetting(get, "SESSIONM_WEBHOOK_TOKEN")
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		return nil, fmt.Errorf("the F4 example event: %w", err)
	}
	body, err := offerBody(raw, runID)
	if err != nil {
		return nil, fmt.Errorf("the F4 example event %s: %w", examplePath, err)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set("Content-Type", "application/json")
	return &scenario{
		pipeline:      "offer-issued-to-braze-campaign",
		path:          func(int, int) string { return "/hooks/sessionm/offers" },
		body:          body,
		header:        h,
		journalPath:   "/braze/campaigns/trigger/send",
		recipients:    triggerRecipients,
		readsBody:     true,
		maxRecipients: triggerRecipientsMax,
	}, nil
}

// offerBody returns a function that builds event i's body from the
// example event: a unique event_id (the engine's dedupe key for SessionM
// events), generated user u, and the seeded Braze campaign. The example is
// encoded once with placeholders that are then replaced, rather than
// encoded per event: the load generator shares the machine with what it
// measures.
func offerBody(example []byte, runID string) (func(i, u int) []byte, error) {
	var ev map[string]any
	if err := json.Unmarshal(example, &ev); err != nil {
		return nil, err
	}
	user, ok1 := ev["user"].(map[string]any)
	campaign, ok2 := ev["campaign"].(map[string]any)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("expected user and campaign objects")
	}
	// Placeholders that cannot occur in the JSON text of the example.
	const eventID, userID, externalID = "\x01event_id", "\x01user_id", "\x01external_id"
	ev["event_id"] = eventID
	user["id"] = userID
	user["external_id"] = externalID
	campaign["braze_campaign_id"] = brazeCampaignID
	tmpl, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	quoted := func(s string) []byte { b, _ := json.Marshal(s); return b }
	qEvent, qUser, qExt := quoted(eventID), quoted(userID), quoted(externalID)
	return func(i, u int) []byte {
		b := bytes.Replace(tmpl, qEvent, quoted(runID+"-"+strconv.Itoa(i)), 1)
		b = bytes.Replace(b, qUser, quoted(sessionmemu.GeneratedUserID(u)), 1)
		return bytes.Replace(b, qExt, quoted(sessionmemu.GeneratedExternalID(u)), 1)
	}, nil
}

// triggerRecipients reads the generated users a Braze trigger request
// named.
func triggerRecipients(e *journalEntry) ([]int, error) {
	if e.Truncated {
		return nil, fmt.Errorf("journal entry %d: the body was cut short by the journal", e.ID)
	}
	var req struct {
		Recipients []struct {
			ExternalUserID string `json:"external_user_id"`
		} `json:"recipients"`
	}
	if err := json.Unmarshal([]byte(e.Body), &req); err != nil {
		return nil, fmt.Errorf("journal entry %d: %v", e.ID, err)
	}
	out := make([]int, 0, len(req.Recipients))
	for _, r := range req.Recipients {
		n, ok := generatedExternalIndex(r.ExternalUserID)
		if !ok {
			return nil, fmt.Errorf("journal entry %d: recipient %q is not a generated user", e.ID, r.ExternalUserID)
		}
		out = append(out, n)
	}
	return out, nil
}

// generatedExternalIndex inverts sessionmemu.GeneratedExternalID.
func generatedExternalIndex(ext string) (int, bool) {
	digits, ok := strings.CutPrefix(ext, "load-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || sessionmemu.GeneratedExternalID(n) != ext {
		return 0, false
	}
	return n, true
}
