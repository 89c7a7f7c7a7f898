package sandbox

import (
	"fmt"
	"strings"

	brazeemu "github.com/loyalty-connector/engine/connectors/braze/emulator"
	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
)

// sessionmEvent makes one event for user, changing the SessionM emulator
// first (the offer goes into the wallet, the points into the balance) so
// the event tells the truth about the state a pipeline will look up.
func (s *Sandbox) sessionmEvent(req *emitRequest, user string) (map[string]any, error) {
	now := s.now()
	var body map[string]any
	switch req.EventType {
	case "offer_issued":
		u, item, err := s.sessionm.IssueForEvent(user, req.OfferID)
		if err != nil {
			return nil, err
		}
		body = eventEnvelope(req.EventType, s.sessionm.RetailerID(), eventUserJSON(u), req.Campaign, now)
		body["offer"] = item
	case "points_awarded":
		u, balance, err := s.sessionm.AwardPoints(user, req.Points)
		if err != nil {
			return nil, err
		}
		body = eventEnvelope(req.EventType, s.sessionm.RetailerID(), eventUserJSON(u), req.Campaign, now)
		body["points"] = map[string]any{"amount": req.Points, "account_name": req.PointsName, "available_points": balance}
	default:
		return nil, fmt.Errorf("event_type %q cannot be emitted", req.EventType)
	}
	return body, nil
}

func eventUserJSON(u sessionmemu.EventUser) map[string]any {
	m := map[string]any{"id": u.ID}
	for k, v := range map[string]string{"external_id": u.ExternalID, "email": u.Email, "culture": u.Culture} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// audienceMember is one user a webhook campaign renders for, with the
// Liquid variables Braze would give the template.
type audienceMember struct {
	id   string
	vars map[string]any
}

// brazeAudience resolves a segment (by name or id) or a list of external
// ids against the Braze emulator's users.
func (s *Sandbox) brazeAudience(segment string, ids []string) ([]audienceMember, error) {
	var users []brazeemu.User
	if segment != "" {
		found, ok := s.braze.Segment(segment)
		if !ok {
			return nil, fmt.Errorf("no Braze segment %q in the seed", segment)
		}
		users = found
	} else {
		var unknown []string
		for _, id := range ids {
			u, ok := s.braze.User(id)
			if !ok {
				unknown = append(unknown, id)
				continue
			}
			users = append(users, u)
		}
		if len(unknown) > 0 {
			return nil, fmt.Errorf("no Braze user with external id %s", quoteList(unknown, 5))
		}
	}
	out := make([]audienceMember, 0, len(users))
	for _, u := range users {
		id := u.ExternalID
		if id == "" {
			id = u.BrazeID
		}
		out = append(out, audienceMember{id: id, vars: u.Liquid()})
	}
	return out, nil
}

// quoteList quotes up to n items and counts the rest.
func quoteList(items []string, n int) string {
	quoted := make([]string, 0, min(n, len(items)))
	for _, it := range items[:min(n, len(items))] {
		quoted = append(quoted, fmt.Sprintf("%q", it))
	}
	out := strings.Join(quoted, ", ")
	if len(items) > n {
		out += fmt.Sprintf(" and %d more", len(items)-n)
	}
	return out
}
