package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/internal/ids"
)

// emitRequest is POST /_sandbox/sessionm/emit: SessionM events posted to a
// URL, one per user (times Count). The envelope is the project's proposal
// (sessionm.md §5, A), the one the shipped pipelines read.
type emitRequest struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	// EventType is offer_issued or points_awarded.
	EventType string `json:"event_type"`
	// Users are SessionM ids or external ids of seeded users.
	Users []string `json:"users"`
	// OfferID (offer_issued) is issued into each user's wallet first, so a
	// wallet lookup made for the event finds it.
	OfferID string `json:"offer_id,omitempty"`
	// Points (points_awarded) are added to each user's balance first.
	Points     int64  `json:"points,omitempty"`
	PointsName string `json:"point_account_name,omitempty"`
	// Campaign is copied into the event: id, name, braze_campaign_id or
	// braze_canvas_id, custom_data.
	Campaign map[string]any `json:"campaign,omitempty"`
	// Count events per user (default 1), each with its own event_id.
	Count int `json:"count,omitempty"`
	sendOptions
}

// eventTypes are the events the emitter can post, with what each needs.
var eventTypes = map[string]string{
	"offer_issued":   "offer_id",
	"points_awarded": "points",
}

// maxEmitted bounds one emit request, so a typo cannot queue millions of
// requests in memory.
const maxEmitted = 100_000

func (sd *senders) postEmit(w http.ResponseWriter, r *http.Request) {
	var req emitRequest
	if !decodeControl(w, r, &req) {
		return
	}
	if problems := req.check(); len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "sessionm emit: "+strings.Join(problems, "; "))
		return
	}
	header, err := headerFrom(req.Headers)
	if err != nil {
		writeError(w, http.StatusBadRequest, "sessionm emit: "+err.Error())
		return
	}
	if header.Get("Content-Type") == "" {
		header.Set("Content-Type", "application/json")
	}
	header.Set("User-Agent", "SessionM-Sandbox/1")
	// Everything is checked before anything changes: a request naming an
	// unknown user or offer changes no wallet or balance.
	for _, user := range req.Users {
		if _, ok := sd.sb.sessionm.EventUser(user); !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("sessionm emit: no SessionM user %q (a SessionM id, external id or email of the seed)", user))
			return
		}
	}
	if req.EventType == "offer_issued" {
		if err := sd.sb.sessionm.CheckOffer(req.OfferID); err != nil {
			writeError(w, http.StatusBadRequest, "sessionm emit: "+err.Error())
			return
		}
	}
	outs := make([]outbound, 0, len(req.Users)*req.Count)
	for _, user := range req.Users {
		for range req.Count {
			event, err := sd.sb.sessionmEvent(&req, user)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("sessionm emit: user %q: %v", user, err))
				return
			}
			body, err := json.Marshal(event)
			if err != nil {
				writeError(w, http.StatusInternalServerError, "sessionm emit: encoding the event: "+err.Error())
				return
			}
			// The same body, event_id included, goes out on every retry,
			// so a receiver can recognise a repeat.
			outs = append(outs, outbound{user: user, method: http.MethodPost, url: req.URL, header: header, body: body})
		}
	}
	sd.run(w, r, "sessionm_emit", outs, sessionmEventRetries, brazeWebhookTimeout, req.sendOptions)
}

func (req *emitRequest) check() []string {
	problems := req.sendOptions.check()
	if err := checkTargetURL(req.URL); err != nil {
		problems = append(problems, "url: "+err.Error())
	}
	need, known := eventTypes[req.EventType]
	switch {
	case !known:
		problems = append(problems, fmt.Sprintf("event_type %q: expected offer_issued or points_awarded", req.EventType))
	case need == "offer_id" && req.OfferID == "":
		problems = append(problems, "offer_issued needs offer_id, the offer to issue")
	case need == "points" && req.Points <= 0:
		problems = append(problems, "points_awarded needs points, a positive number")
	}
	if len(req.Users) == 0 {
		problems = append(problems, "users is required: SessionM ids or external ids")
	}
	if req.Count == 0 {
		req.Count = 1
	}
	// Divided, not multiplied, so a huge count cannot overflow past the check.
	if req.Count < 0 || req.Count > maxEmitted/max(1, len(req.Users)) {
		problems = append(problems, fmt.Sprintf("count times users must be between 1 and %d", maxEmitted))
	}
	if req.PointsName == "" {
		req.PointsName = "Spendable Points"
	}
	return problems
}

// eventEnvelope is sessionm.md §5's proposal (A).
func eventEnvelope(eventType, retailerID string, user map[string]any, campaign map[string]any, now time.Time) map[string]any {
	e := map[string]any{
		"event_id":    ids.NewUUID(),
		"event_type":  eventType,
		"occurred_at": now.UTC().Format(time.RFC3339),
		"retailer_id": retailerID,
		"user":        user,
	}
	if len(campaign) > 0 {
		e["campaign"] = campaign
	}
	return e
}
