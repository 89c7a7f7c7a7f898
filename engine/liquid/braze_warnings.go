package liquid

import (
	"fmt"
	"strings"
)

// Braze renders Liquid 5 but refuses part of it (specs/braze.md §6): these
// are the tags and filters it documents, and the rest is only warned
// about, since the engine renders it; a preview should still say that
// Braze would not.
var (
	brazeTags = words(`if elsif else endif unless endunless case when endcase for endfor break continue
		assign capture endcapture comment endcomment raw endraw echo liquid
		connected_content abort_message __content_block catalog_items catalog_selection_items promotion message_extras shopping_cart`)
	brazeFilters = words(`join first last compact concat map reverse size slice sort sort_natural uniq where
		abs at_most at_least ceil divided_by floor minus plus round times modulo money
		append capitalize downcase escape md5 sha1 hmac_sha256 hmac_sha512 newline_to_br prepend remove remove_first
		replace replace_first split strip strip_html strip_newlines truncate truncatewords upcase date default
		sha2 base64_encode hmac_sha1 hmac_sha1_hex hmac_sha1_base64 hmac_sha256_hex hmac_sha256_base64
		url_escape url_param_escape url_encode property_accessor number_with_delimiter json_escape json_parse
		as_json_string time_zone`)
	// comparisons and logic: Braze refuses them in assign
	operators = words(`== != <> < > <= >= contains and or`)
)

func words(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// brazeWarnings lists what Braze would refuse in a template that parses.
func brazeWarnings(p prepared, a analysis) []Problem {
	var out []Problem
	warn := func(off int, format string, args ...any) {
		out = append(out, Problem{Offset: p.offsets.original(off), Message: fmt.Sprintf(format, args...)})
	}
	for _, tag := range a.tags {
		name, args := tag.Name, tag.args
		if !brazeTags[name] {
			warn(tag.Offset, "Braze does not document {%% %s %%}: the engine renders it, Braze may not", name)
			continue
		}
		switch name {
		case "if", "elsif", "unless", "case", "when", "for":
			for _, t := range args {
				if t.text == "|" {
					warn(t.off, "Braze does not allow filters in {%% %s %%}: assign the filtered value first, then use it here", name)
					break
				}
			}
			if name == "for" {
				continue
			}
			for _, t := range args {
				if t.text == "(" {
					warn(t.off, "Braze does not allow parentheses in {%% %s %%}: assign part of the condition first", name)
					break
				}
			}
		case "else":
			// Liquid reads what follows else as nothing: {% else if x %}
			// is a plain else, silently.
			switch {
			case len(args) > 0 && args[0].text == "if":
				warn(tag.Offset, "{%% else if %%} is read as {%% else %%}, its condition ignored: in an if or unless block write {%% elsif ... %%}; elsewhere put an {%% if %%} inside the {%% else %%}")
			case len(args) > 0:
				warn(tag.Offset, "{%% else %%} takes nothing: %q after it is ignored", args[0].text)
			}
		case "assign":
			for i, t := range args {
				if i > 1 && operators[t.text] {
					warn(t.off, "Braze does not allow %s in {%% assign %%}: assign the value, then compare it in {%% if %%}", t.text)
					break
				}
			}
		}
	}
	for _, f := range a.filters {
		if !brazeFilters[f.Name] {
			warn(f.Offset, "Braze does not list the filter %q: the engine renders it, Braze may not", f.Name)
		}
	}
	for _, r := range a.refs { // placed in the user's source already
		if len(r.Path) > 0 && r.Path[0] == "content_blocks" {
			// {{content_blocks.${footer} | upcase}} rendered empty, saying
			// nothing (a QA run).
			out = append(out, Problem{Offset: r.Offset, Message: "a Content Block is inserted by {{content_blocks.${name}}} alone in its braces, without a filter; written otherwise it reads a variable content_blocks, which a message does not have, and renders empty"})
		}
	}
	return out
}
