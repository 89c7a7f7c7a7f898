package sandbox

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/liquid"
	"github.com/loyalty-connector/engine/internal/ids"
)

// webhookCampaign is POST /_sandbox/braze/webhook-campaign: what a Braze
// webhook campaign would send, per user of a segment (braze.md §4).
type webhookCampaign struct {
	// URL, Headers and Body may use Braze Liquid: {{${user_id}}},
	// {{custom_attribute.${tier}}}, {{campaign.${name}}}, ...
	URL     string            `json:"url"`
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	// RenderHeaderLiquid false sends header values as written, Liquid
	// unrendered. braze.md §4: "Examples use {{...}} in header values, but
	// no page states that Liquid works there (unconfirmed)", so a user can
	// see what a receiver does with either. Missing means true, which the
	// README's example (and Braze's own examples) rely on.
	RenderHeaderLiquid *bool `json:"render_header_liquid,omitempty"`
	// Segment names a seeded Braze segment; Users lists external ids.
	// Exactly one of them.
	Segment  string   `json:"segment,omitempty"`
	Users    []string `json:"users,omitempty"`
	Campaign struct {
		ID   string `json:"id,omitempty"`
		Name string `json:"name,omitempty"`
	} `json:"campaign,omitzero"`
	sendOptions
}

// webhookMethods are the methods a Braze webhook can use (braze.md §4).
var webhookMethods = map[string]bool{"POST": true, "GET": true, "PUT": true, "DELETE": true}

// campaignTemplates is a webhook campaign's parsed Liquid.
type campaignTemplates struct {
	url     *liquid.Template
	headers map[string]*liquid.Template // nil when header values go as written
	body    *liquid.Template
}

func (sd *senders) postWebhookCampaign(w http.ResponseWriter, r *http.Request) {
	var req webhookCampaign
	if !decodeControl(w, r, &req) {
		return
	}
	problems := req.check()
	tpl, templateProblems := parseCampaign(&req)
	problems = append(problems, templateProblems...)
	var audience []audienceMember
	if len(problems) == 0 {
		var err error
		if audience, err = sd.sb.brazeAudience(req.Segment, req.Users); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "webhook campaign: "+strings.Join(problems, "; "))
		return
	}
	dispatchID := ids.NewUUID()
	campaign := map[string]any{"api_id": req.Campaign.ID, "name": req.Campaign.Name, "dispatch_id": dispatchID}
	outs := make([]outbound, 0, len(audience))
	for _, m := range audience {
		m.vars["campaign"] = campaign
		outs = append(outs, sd.renderWebhook(&req, tpl, m))
	}
	sd.run(w, r, "braze_webhook_campaign", outs, brazeWebhookRetries, brazeWebhookTimeout, req.sendOptions)
}

func (req *webhookCampaign) check() []string {
	problems := req.sendOptions.check()
	req.Method = strings.ToUpper(req.Method)
	if req.Method == "" {
		req.Method = http.MethodPost
	}
	if !webhookMethods[req.Method] {
		problems = append(problems, fmt.Sprintf("method %s: Braze webhooks use POST, GET, PUT or DELETE", req.Method))
	}
	if req.Method == http.MethodGet && req.Body != "" {
		problems = append(problems, "a GET webhook carries no body")
	}
	if req.URL == "" {
		problems = append(problems, "url is required: where the webhook goes, e.g. http://127.0.0.1:8080/hooks/braze/tags/{{${user_id}}}")
	}
	if (req.Segment == "") == (len(req.Users) == 0) {
		problems = append(problems, "name either a segment or users (external ids), not both")
	}
	return problems
}

func parseCampaign(req *webhookCampaign) (campaignTemplates, []string) {
	engine := liquid.NewEngine()
	var problems []string
	parse := func(what, src string) *liquid.Template {
		t, ps := engine.Parse(src, liquid.Options{})
		for _, p := range ps {
			line, col := diag.LineCol(src, p.Offset)
			problems = append(problems, fmt.Sprintf("%s: line %d, column %d: %s", what, line, col, p.Message))
		}
		return t
	}
	tpl := campaignTemplates{url: parse("url", req.URL)}
	if req.RenderHeaderLiquid == nil || *req.RenderHeaderLiquid {
		tpl.headers = make(map[string]*liquid.Template, len(req.Headers))
		for name, v := range req.Headers {
			tpl.headers[name] = parse("header "+name, v)
		}
	}
	if req.Body != "" {
		tpl.body = parse("body", req.Body)
	}
	return tpl, problems
}

// renderWebhook renders one user's request; a user whose template fails
// gets an outbound that reports the failure instead of being sent.
func (sd *senders) renderWebhook(req *webhookCampaign, tpl campaignTemplates, m audienceMember) outbound {
	out := outbound{user: m.id, method: req.Method}
	fail := func(what string, err error) outbound {
		out.failed = fmt.Sprintf("rendering the %s: %v", what, err)
		return out
	}
	u, err := tpl.url.Render(m.vars)
	if err != nil {
		return fail("url", err)
	}
	out.url = strings.TrimSpace(u)
	if err := checkTargetURL(out.url); err != nil {
		return fail("url", err)
	}
	values := req.Headers // as written, unless they are rendered
	if tpl.headers != nil {
		values = make(map[string]string, len(tpl.headers))
		for name, t := range tpl.headers {
			v, err := t.Render(m.vars)
			if err != nil {
				return fail("header "+name, err)
			}
			values[name] = v
		}
	}
	if out.header, err = headerFrom(values); err != nil {
		return fail("headers", err)
	}
	if tpl.body != nil {
		body, err := tpl.body.Render(m.vars)
		if err != nil {
			return fail("body", err)
		}
		out.body = []byte(body)
		if out.header.Get("Content-Type") == "" {
			out.header.Set("Content-Type", inferContentType(out.body))
		}
	}
	out.header.Set("User-Agent", sd.userAgent)
	return out
}
