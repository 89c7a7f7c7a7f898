package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/internal/ids"
)

const (
	connectPrefix = "/offers/api/2.0/offers/"
	// maxTake caps take at the documented cap of the sibling reward-store
	// calls (sessionm.md §4, A); 0 or absent means the cap.
	maxTake = 1000
	// maxIssueQuantity bounds one acquisition/issue call (A).
	maxIssueQuantity = 100
	defaultCulture   = "en-US" // sessionm.md §4, C
)

// offer is a catalogue offer, read-only after New.
type offer struct {
	id, rootID, groupID, offerType, posDiscountID string
	texts                                         []SeedOfferText
	start, end, redStart, redEnd                  *time.Time
	expiresAfterDays                              int
	pending                                       bool
	media                                         []mediaJSON
}

type mediaJSON struct {
	ID           *string `json:"id"`
	CategoryID   *string `json:"category_id"`
	CategoryName *string `json:"category_name"`
	URI          string  `json:"uri"`
	ContentType  int     `json:"content_type"`
}

type offerGroupJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	SortOrder int    `json:"sort_order"`
}

type offerCategoryJSON struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	SortOrder  int      `json:"sort_order"`
	OfferTypes []string `json:"offer_types"`
}

func timePtr(t *Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.Time
	return &v
}

func (e *Emulator) buildOffers() {
	e.offerByID = map[string]*offer{}
	e.latestByRoot = map[string]*offer{}
	for _, s := range e.seed.Offers {
		o := &offer{
			id: s.OfferID, rootID: s.RootOfferID, groupID: s.OfferGroupID, offerType: s.OfferType,
			posDiscountID: s.PosDiscountID, texts: s.Texts,
			start: timePtr(s.StartDate), end: timePtr(s.EndDate),
			redStart: timePtr(s.RedemptionStartDate), redEnd: timePtr(s.RedemptionEndDate),
			expiresAfterDays: s.ExpiresAfterDays, pending: s.RequiresExtendedData,
			media: []mediaJSON{},
		}
		if o.rootID == "" {
			o.rootID = o.id
		}
		if o.groupID == "" {
			o.groupID = e.defaultGroup
		}
		if o.offerType == "" {
			o.offerType = "manual_fulfillment"
		}
		for _, m := range s.Media {
			ct := m.ContentType
			if ct == 0 {
				ct = 1
			}
			o.media = append(o.media, mediaJSON{ID: nullable(m.ID), CategoryID: nullable(m.CategoryID), CategoryName: nullable(m.CategoryName), URI: m.URI, ContentType: ct})
		}
		e.offers = append(e.offers, o)
		e.offerByID[o.id] = o
		e.latestByRoot[o.rootID] = o // the last version listed is the current one
	}
}

// text picks the texts for culture: exact (without case), then en-US, then
// the first listed (sessionm.md §7, A).
func (o *offer) text(culture string) SeedOfferText {
	for _, want := range [2]string{culture, defaultCulture} {
		for _, t := range o.texts {
			if strings.EqualFold(t.Culture, want) {
				return t
			}
		}
	}
	return o.texts[0]
}

func (e *Emulator) userOfferFromSeed(s SeedUserOffer) *userOffer {
	uo := &userOffer{
		id: s.UserOfferID, offer: e.offerByID[s.OfferID], acquired: s.AcquireDate.Time,
		expires: timePtr(s.ExpirationDate), redeemed: timePtr(s.RedeemDate),
		redeemable: s.RedeemDate == nil, pending: s.PendingExtendedData,
		quantity: s.Quantity, pointsSpent: s.PointsSpent, customData: s.CustomData,
		status: s.UserOfferStatus, storeID: s.StoreID,
	}
	if s.IsRedeemable != nil {
		uo.redeemable = *s.IsRedeemable
	}
	if uo.quantity == 0 {
		uo.quantity = 1
	}
	if uo.status == 0 {
		uo.status = 1
	}
	return uo
}

// Connect serves SessionM Connect Offers 2.0 under /offers/api/2.0/offers/:
// get_user_offers and acquisition/issue (sessionm.md §4).
func (e *Emulator) Connect() http.Handler { return http.HandlerFunc(e.serveConnect) }

func (e *Emulator) serveConnect(w http.ResponseWriter, r *http.Request) {
	segs, ok := splitPath(r, connectPrefix)
	route := ""
	if ok {
		route = strings.Join(segs, "/")
	}
	if route != "get_user_offers" && route != "acquisition/issue" {
		e.send(w, errReply(errorf("not_found", "no such Connect endpoint: %s %s", r.Method, r.URL.Path)))
		return
	}
	if r.Method != http.MethodPost { // all Connect calls are POST (sessionm.md §4, O)
		a := errorf("method_not_allowed", "%s is not allowed here; use POST", r.Method)
		a.allow = "POST"
		e.send(w, errReply(a))
		return
	}
	// Basic with the Connect key and secret (sessionm.md §1, C/O).
	if h := r.Header.Get("Authorization"); h != e.connectHeader {
		user, pass, ok := r.BasicAuth()
		if !ok || user != e.connectKey || pass != e.connectSecret {
			e.send(w, errReply(errorf("invalid_auth_token", "the Authorization header must be the Connect Basic authorization string")))
			return
		}
	}
	if a := e.rateLimited("connect\x00" + e.connectKey); a != nil {
		e.send(w, errReply(a))
		return
	}
	body, a := e.readBody(r)
	if a != nil {
		e.send(w, errReply(a))
		return
	}
	e.send(w, e.idempotent(r, "connect", body, func() reply {
		if route == "get_user_offers" {
			return e.getUserOffers(body)
		}
		return e.issueOffer(body)
	}))
}

// connectRequest reads the fields every Connect call has: retailer_id
// (required, C) and user_id (required, C).
func (e *Emulator) connectRequest(body []byte) (*fields, string, *apiError) {
	m, a := parseObject(body)
	if a != nil {
		return nil, "", a
	}
	f := &fields{m: m, errs: map[string]string{}}
	retailer, hasRetailer := f.str("retailer_id")
	if !hasRetailer && f.errs["retailer_id"] == "" {
		f.errs["retailer_id"] = "can't be blank"
	}
	userID, hasUser := f.str("user_id")
	if !hasUser && f.errs["user_id"] == "" {
		f.errs["user_id"] = "can't be blank"
	}
	if hasRetailer && !strings.EqualFold(retailer, e.retailerID) {
		// A wrong tenant: access_denied, 403 (sessionm.md §1 lists the code; the status is A).
		return nil, "", errorf("access_denied", "retailer_id %q is not this tenant's retailer", retailer)
	}
	return f, userID, nil
}

// userOfferJSON is a user_offers[] item, every field of the table in
// sessionm.md §4, in its order.
type userOfferJSON struct {
	OfferID             string      `json:"offer_id"`
	OfferGroupID        string      `json:"offer_group_id"`
	OfferType           string      `json:"offer_type"`
	UserOfferID         string      `json:"user_offer_id"`
	RootOfferID         string      `json:"root_offer_id"`
	Name                string      `json:"name"`
	Description         string      `json:"description"`
	Terms               string      `json:"terms"`
	StartDate           *string     `json:"start_date"`
	EndDate             *string     `json:"end_date"`
	AcquireDate         string      `json:"acquire_date"`
	ExpirationDate      *string     `json:"expiration_date"`
	RedemptionStartDate *string     `json:"redemption_start_date"`
	RedemptionEndDate   *string     `json:"redemption_end_date"`
	RedeemDate          *string     `json:"redeem_date"`
	IsRedeemable        bool        `json:"is_redeemable"`
	Media               []mediaJSON `json:"media"`
	PosDiscountID       *string     `json:"pos_discount_id"`
	Quantity            int         `json:"quantity"`
	PointsSpent         float64     `json:"points_spent"`
	PendingExtendedData bool        `json:"pending_extended_data"`
	CustomData          *string     `json:"custom_data"`
	UserOfferStatus     int         `json:"user_offer_status"`
	StoreID             *string     `json:"store_id"`
}

func (e *Emulator) userOfferObject(uo *userOffer, culture string) userOfferJSON {
	o := uo.offer
	t := o.text(culture)
	return userOfferJSON{
		OfferID: o.id, OfferGroupID: o.groupID, OfferType: o.offerType, UserOfferID: uo.id, RootOfferID: o.rootID,
		Name: t.Name, Description: t.Description, Terms: t.Terms,
		StartDate: e.connectTimePtr(o.start), EndDate: e.connectTimePtr(o.end),
		AcquireDate: e.connectTime(uo.acquired), ExpirationDate: e.connectTimePtr(uo.expires),
		RedemptionStartDate: e.connectTimePtr(o.redStart), RedemptionEndDate: e.connectTimePtr(o.redEnd),
		RedeemDate: e.connectTimePtr(uo.redeemed), IsRedeemable: uo.redeemable,
		Media: o.media, PosDiscountID: nullable(o.posDiscountID),
		Quantity: uo.quantity, PointsSpent: uo.pointsSpent, PendingExtendedData: uo.pending,
		CustomData: uo.customData, UserOfferStatus: uo.status, StoreID: uo.storeID,
	}
}

type offersPayload struct {
	User            *userJSON           `json:"user"`
	UserID          string              `json:"user_id"`
	UserOffers      []userOfferJSON     `json:"user_offers"`
	TotalRecords    int                 `json:"total_records"`
	OfferGroups     []offerGroupJSON    `json:"offer_groups"`
	OfferCategories []offerCategoryJSON `json:"offer_categories"`
	TotalPoints     int64               `json:"total_points"`
	AvailablePoints int64               `json:"available_points"`
}

func okPayload(payload any) reply {
	body, err := json.Marshal(struct {
		Status  string `json:"status"`
		Payload any    `json:"payload"`
	}{"ok", payload})
	if err != nil {
		return errReply(errorf("internal_server_error", "internal server error"))
	}
	return okReply(body)
}

// getUserOffers answers the user's offers "in the issued state"
// (sessionm.md §4, C). Read as: a redeemed user-offer (redeem_date set) has
// left the issued state and is left out; an expired one that was never
// redeemed is still issued and stays, as does one whose is_redeemable the
// seed set to false without a redeem_date. settings.include_redeemed true
// returns redeemed ones too, the whole wallet of
// examples/fixtures/wallet.json. include_pending_extended_data false (the
// default, A) leaves out user-offers still pending extended data, unless
// settings.filter_pending_extended_data is false (A, configurable). Paging:
// skip/take; total_records counts what is returned before paging.
func (e *Emulator) getUserOffers(body []byte) reply {
	f, userID, a := e.connectRequest(body)
	if a != nil {
		return errReply(a)
	}
	skip, _ := f.integer("skip")
	take, _ := f.integer("take")
	culture, hasCulture := f.str("culture")
	if !hasCulture || culture == "" {
		culture = defaultCulture
	}
	includePending, _ := f.boolean("include_pending_extended_data")
	if skip < 0 && f.errs["skip"] == "" {
		f.errs["skip"] = "must be 0 or more"
	}
	if take < 0 && f.errs["take"] == "" {
		f.errs["take"] = "must be 0 or more"
	}
	if len(f.errs) > 0 {
		return errReply(fieldErrors("validation", "request", f.errs))
	}
	if take == 0 || take > maxTake {
		take = maxTake
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.lookupID(userID) // the SessionM id, not the external id (sessionm.md §4, C)
	if !ok {
		return errReply(errorf("user_not_found", "no user with user id %q", userID))
	}
	u := e.userAt(i)
	var wallet []*userOffer
	if st := e.state[i]; st != nil {
		wallet = st.wallet
	}
	p := offersPayload{
		User: e.userObject(u, userView{}), UserID: u.id, UserOffers: []userOfferJSON{},
		OfferGroups: e.groups, OfferCategories: e.categories,
		TotalPoints: u.totalPoints, AvailablePoints: u.availablePoints,
	}
	if p.OfferGroups == nil {
		p.OfferGroups = []offerGroupJSON{}
	}
	if p.OfferCategories == nil {
		p.OfferCategories = []offerCategoryJSON{}
	}
	for _, uo := range wallet {
		if (uo.pending && !includePending && e.filterPending) || (uo.redeemed != nil && !e.seed.Settings.IncludeRedeemed) {
			continue
		}
		if int64(p.TotalRecords) >= skip && int64(len(p.UserOffers)) < take {
			p.UserOffers = append(p.UserOffers, e.userOfferObject(uo, culture))
		}
		p.TotalRecords++
	}
	return okPayload(p)
}

type issueStatus struct {
	UserID              string `json:"user_id"`
	UserOfferID         string `json:"user_offer_id"`
	OfferID             string `json:"offer_id"`
	RootOfferID         string `json:"root_offer_id"`
	PendingExtendedData bool   `json:"pending_extended_data"`
	FailReason          int    `json:"fail_reason"`
}

// issueOffer is acquisition/issue (sessionm.md §4, O): quantity (default 1,
// at most 100, A) new user-offers, each with a new uuid, acquire_date now and
// the offer's expiry. With issue_exact_version false (the default) offer_id
// may name any version or the root, and the current version is issued (A);
// true issues exactly offer_id. An unknown offer is not_found (404, A); one
// outside its start/end window is not_available (422, A).
func (e *Emulator) issueOffer(body []byte) reply {
	f, userID, a := e.connectRequest(body)
	if a != nil {
		return errReply(a)
	}
	offerID, hasOffer := f.str("offer_id")
	if !hasOffer && f.errs["offer_id"] == "" {
		f.errs["offer_id"] = "can't be blank"
	}
	quantity, hasQuantity := f.integer("quantity")
	if !hasQuantity {
		quantity = 1
	}
	if (quantity < 1 || quantity > maxIssueQuantity) && f.errs["quantity"] == "" {
		f.errs["quantity"] = "must be between 1 and 100"
	}
	exact, _ := f.boolean("issue_exact_version")
	if len(f.errs) > 0 {
		return errReply(fieldErrors("validation", "request", f.errs))
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	i, ok := e.lookupID(userID)
	if !ok {
		return errReply(errorf("user_not_found", "no user with user id %q", userID))
	}
	o, a := e.findOffer(offerID, exact, now)
	if a != nil {
		return errReply(a)
	}
	issued := e.issue(i, o, int(quantity), now)
	list := make([]issueStatus, 0, quantity)
	for _, uo := range issued {
		list = append(list, issueStatus{UserID: e.userAt(i).id, UserOfferID: uo.id, OfferID: o.id, RootOfferID: o.rootID, PendingExtendedData: uo.pending})
	}
	return okPayload(struct {
		StatusList []issueStatus `json:"status_list"`
	}{list})
}

// findOffer resolves offer_id as acquisition/issue does: with exact false
// any version's id or the root id names the current version (A). Callers
// hold e.mu.
func (e *Emulator) findOffer(offerID string, exact bool, now time.Time) (*offer, *apiError) {
	o := e.offerByID[offerID]
	if !exact {
		if o != nil {
			o = e.latestByRoot[o.rootID]
		} else {
			o = e.latestByRoot[offerID]
		}
	}
	if o == nil {
		return nil, errorf("not_found", "no offer with offer_id %q", offerID)
	}
	switch {
	case o.start != nil && now.Before(*o.start):
		return nil, errorf("not_available", "offer %q is outside its start_date/end_date window: it starts at %s", o.id, e.connectTime(*o.start))
	case o.end != nil && now.After(*o.end):
		return nil, errorf("not_available", "offer %q is outside its start_date/end_date window: it ended at %s", o.id, e.connectTime(*o.end))
	}
	return o, nil
}

// issue puts quantity new user-offers of o into user i's wallet, expiring
// expires_after_days after now, else at the offer's redemption end (A).
// Callers hold e.mu.
func (e *Emulator) issue(i int, o *offer, quantity int, now time.Time) []*userOffer {
	var expires *time.Time
	switch {
	case o.expiresAfterDays > 0:
		t := now.AddDate(0, 0, o.expiresAfterDays)
		expires = &t
	case o.redEnd != nil:
		t := *o.redEnd
		expires = &t
	}
	st := e.stateFor(i)
	issued := make([]*userOffer, 0, quantity)
	for range quantity {
		uo := &userOffer{
			id: ids.NewUUID(), offer: o, acquired: now, expires: expires, redeemable: true,
			pending: o.pending, quantity: 1, status: 1,
		}
		st.wallet = append(st.wallet, uo)
		issued = append(issued, uo)
	}
	st.dirty = true
	return issued
}
