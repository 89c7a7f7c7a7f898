// Package emulator is a local SessionM for tests and `engine sandbox`:
// Core tags and users (handler Core, paths /priv/v1/apps/{api_key}/...) and
// Connect Offers 2.0 get_user_offers and acquisition/issue (handler
// Connect, paths /offers/api/2.0/offers/...), seeded from a YAML file
// (examples/sandbox/sessionm.yaml). Facts come from specs/sessionm.md; the
// request journal and fault injection belong to the sandbox package.
//
// Where the public record is silent the emulator assumes (label A in
// sessionm.md). The switchable assumptions are keys of the seed's
// settings (errors_as_200, include_redeemed, rate_limit, rate_burst,
// idempotency, max_body, connect_datetime_format, tag_ttl_on_repost,
// tag_response, filter_pending_extended_data), so a sandbox user can
// switch them without Go; errors_as_200, rate_limit, rate_burst,
// idempotency, max_body and connect_datetime_format are fields of Options
// too, which win when not zero. The fixed ones are listed here and on the
// code that implements them:
//
//   - §1: error statuses 404 user_not_found/not_found, 401
//     invalid_api_key/invalid_auth_token, 403 access_denied (a wrong
//     retailer_id), 422 validation/missing_data/argument_error/not_available,
//     405 method_not_allowed (with Allow), 413 request_too_large, 409
//     request_in_progress, 429 rate_limited, 500 internal_server_error;
//     settings.errors_as_200 (or Options.ErrorsAs200) turns them into HTTP
//     200, as the docs describe, except the statuses the docs name (401,
//     404, 500 and other 5xx) and our 429, which keep theirs so a client
//     still retries what is throttled. Field errors sit
//     under a resource key, as in the observed {"user":{"email":...}}: "user"
//     for users, "tag" for tag bodies, "request" for Connect bodies; a
//     message repeats the first one.
//   - §2: the tags answer is {"status":"ok","tags":{name:{"count":n} |
//     {"expires_at":"YYYY-MM-DD HH:MM:SS"}}} with all live tags in creation
//     order (settings.tag_response: status answers {"status":"ok"} alone,
//     the envelope §1 confirms, which sessionm.md names no other
//     candidate for); GET on the same path answers the tags either way.
//     Re-POSTing an expiring tag restarts its TTL
//     (settings.tag_ttl_on_repost: keep leaves it); the last call decides
//     a tag's kind (counter
//     posted with ttl becomes expiring, expiring posted without ttl becomes
//     a counter at 1); a name repeated in one call counts once; one call
//     takes at most 1,000 tags (more is 422 validation with
//     {"tag":{"tags":"at most 1000 tags per call, not n"}}); ttl must be a
//     JSON integer 1..100 years (a numeric string is refused).
//   - §3: POST /users requires an email; external_id is unique too; a US
//     state is checked; user_profile merges key by key on PUT (null
//     removes a key); a PUT of external_id replaces the mapping the user
//     object answers and drops the old one, while the seed's further
//     external_ids stay (every mapping resolves, sessionm.md §2, O); an
//     empty external_id drops the answered mapping and the next one is
//     answered; unknown user keys are ignored; user_profile is shown by
//     GET only with user[user_profile]=true, identifiers (every mapping,
//     with external_id_type "default") only with show_identifiers=true.
//   - §4: take 0 or absent means 1000, more is capped at 1000; culture
//     picks texts exactly (case-insensitive), then en-US, then the first
//     listed; include_pending_extended_data defaults to false and false
//     hides pending user-offers (settings.filter_pending_extended_data:
//     false returns them whatever the flag); "in the issued state" (C) is
//     read as: a
//     redeemed user-offer (redeem_date set) is left out, an expired one
//     that was never redeemed is still issued and is returned
//     (settings.include_redeemed: true returns redeemed ones too, as
//     examples/fixtures/wallet.json shows); total_records counts the
//     user-offers returned before paging; Connect datetimes are in UTC,
//     ISO-8601 without fraction unless settings.connect_datetime_format
//     (or Options.ConnectDatetimeFormat) asks for the .NET forms, with or
//     without the zone; retailer_id compares without case.
//     acquisition/issue (and CheckOffer, IssueForEvent): quantity 1..100
//     user-offers (one status_list entry each, fail_reason 0), random v4
//     user_offer_ids, expiration acquire+expires_after_days, else the
//     offer's redemption_end_date, else none; without issue_exact_version
//     offer_id may name any version or the root and the current (last
//     listed) version is issued; unknown offer 404 not_found; outside
//     start_date..end_date 422 not_available.
//   - §7: rate limit and Idempotency-Key are off by default
//     (settings.rate_limit, rate_burst, idempotency or Options); request
//     bodies are capped at 1 MiB (settings.max_body or Options.MaxBody).
package emulator
