package fingerprint

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// recogTarget says where a Recog "matches" key's text lives in a grab
// result. Recog matches a protocol's text after the protocol's own prefix
// (the "SSH-2.0-" of an SSH banner, the "220 " of an FTP greeting); since
// our fields keep that prefix, an anchored pattern gets it back as an
// optional prefix.
type recogTarget struct {
	protocol, field, prefix string
}

var recogKeys = map[string]recogTarget{
	"ssh.banner":               {"ssh", "banner", `SSH-[\d.]+-`},
	"http_header.server":       {"http", "server", ""},
	"http_header.x_powered_by": {"http", "x-powered-by", ""},
	"html_title":               {"http", "title", ""},
	"html.title":               {"http", "title", ""},
	"ftp.banner":               {"ftp", "banner", `(?:\d{3}[ -])?`},
	"smtp.banner":              {"smtp", "banner", `(?:\d{3}[ -])?`},
	"smtp.ehlo":                {"smtp", "smtp.ehlo", ""},
	"pop.banner":               {"pop3", "banner", `(?:\+OK )?`},
	"pop3.banner":              {"pop3", "banner", `(?:\+OK )?`},
	"imap4.banner":             {"imap", "banner", `(?:\* OK )?`},
	"imap.banner":              {"imap", "banner", `(?:\* OK )?`},
	"telnet.banner":            {"telnet", "banner", ""},
	"dns.versionbind":          {"dns", "banner", ""},
	"ntp.banner":               {"ntp", "banner", ""},
	"sip_header.server":        {"sip", "server", ""},
	"sip_header.user_agent":    {"sip", "server", ""},
	"mysql.banners":            {"mysql", "banner", ""},
	"mysql.banner":             {"mysql", "banner", ""},
	"redis.banner":             {"redis", "banner", ""},
	"vnc.banner":               {"vnc", "banner", ""},
	"rdp.banner":               {"rdp", "banner", ""},
}

type recogFingerprint struct {
	Pattern     string       `xml:"pattern,attr"`
	Flags       string       `xml:"flags,attr"`
	Description string       `xml:"description"`
	Params      []recogParam `xml:"param"`
}

type recogParam struct {
	Pos   int    `xml:"pos,attr"`
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// ImportRecog reads one Recog XML fingerprint file (<fingerprints
// matches="ssh.banner">...) and converts its fingerprints into rules: the
// matches key gives protocol and field (keys we have no field for are
// skipped), the Ruby pattern is translated (Ruby's ^ and $ are line
// anchors, its m flag is dot-matches-newline) and the params become the
// rule's outputs (service.product, service.version, service.cpe23,
// os.*, hw.device...; others go to Extra). source names the input in rule
// IDs ("source:line"). The error is for unreadable XML only.
func ImportRecog(r io.Reader, source string) (*DB, Report, error) {
	rep := newReport(source)
	dec := xml.NewDecoder(r)
	dec.Strict = true
	var target recogTarget
	var matches string
	mapped := false
	var rules []*compiledRule
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, rep, fmt.Errorf("import recog %s: %w", source, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "fingerprints":
			for _, a := range se.Attr {
				if a.Name.Local == "matches" {
					matches = a.Value
				}
			}
			target, mapped = recogKeys[matches]
		case "fingerprint":
			line, _ := dec.InputPos()
			var fp recogFingerprint
			if err := dec.DecodeElement(&fp, &se); err != nil {
				return nil, rep, fmt.Errorf("import recog %s: line %d: %w", source, line, err)
			}
			rep.Total++
			where := fmt.Sprintf("line %d", line)
			if !mapped {
				rep.skip(where, &skipError{reason: "unmapped matches key", detail: strconv.Quote(matches)})
				continue
			}
			rule, err := recogRule(fp, target)
			if err != nil {
				rep.skip(where, err)
				continue
			}
			rule.ID = fmt.Sprintf("%s:%d", source, line)
			rule.Source = rule.ID
			c, err := compile(rule)
			if err != nil {
				rep.skip(where, err)
				continue
			}
			rules = append(rules, c)
			rep.Imported++
			rep.Protocols[rule.Protocol]++
		}
	}
	db, err := build(rules)
	if err != nil {
		return nil, rep, fmt.Errorf("import recog %s: %w", source, err)
	}
	return db, rep, nil
}

func recogRule(fp recogFingerprint, t recogTarget) (Rule, error) {
	if fp.Pattern == "" {
		return Rule{}, skip("bad fingerprint", "no pattern")
	}
	pat, err := translate(fp.Pattern, dialectRuby)
	if err != nil {
		return Rule{}, err
	}
	if t.prefix != "" {
		// Ruby's ^ starts any line, \A the text; either way the prefix
		// may come first.
		switch {
		case strings.HasPrefix(pat, "^"):
			pat = "^" + t.prefix + pat[1:]
		case strings.HasPrefix(pat, `\A`):
			pat = `\A` + t.prefix + pat[2:]
		}
	}
	flags := "m"
	for _, f := range strings.FieldsFunc(fp.Flags, func(r rune) bool { return r == ',' || r == '|' || r == ' ' }) {
		switch f {
		case "REG_ICASE", "IGNORECASE":
			flags += "i"
		case "REG_DOT_NEWLINE", "REG_MULTILINE", "REG_LINE_ANY_CRLF":
			if !strings.Contains(flags, "s") {
				flags += "s"
			}
		}
	}
	rule := Rule{
		Protocol: t.protocol,
		Field:    t.field,
		Pattern:  "(?" + flags + ")" + pat,
		Bytes:    true,
	}
	// Param values: pos > 0 is a capture group, pos 0 a literal that may
	// interpolate other params as {name}.
	vals := map[string]string{}
	for _, p := range fp.Params {
		if p.Pos > 0 {
			vals[p.Name] = "${" + strconv.Itoa(p.Pos) + "}"
		} else {
			vals[p.Name] = strings.ReplaceAll(p.Value, "$", "$$")
		}
	}
	get := func(name string) (string, error) {
		v, ok := vals[name]
		if !ok {
			return "", nil
		}
		return recogInterpolate(v, vals)
	}
	set := func(dst *string, names ...string) error {
		var parts []string
		for _, n := range names {
			v, err := get(n)
			if err != nil {
				return err
			}
			if v != "" {
				parts = append(parts, v)
			}
		}
		*dst = strings.Join(parts, " ")
		return nil
	}
	for _, s := range []struct {
		dst   *string
		names []string
	}{
		{&rule.Product, []string{"service.product"}},
		{&rule.Vendor, []string{"service.vendor"}},
		{&rule.Version, []string{"service.version"}},
		{&rule.OS, []string{"os.vendor", "os.product", "os.version"}},
		{&rule.Device, []string{"hw.device"}},
		{&rule.Info, []string{"service.edition"}},
	} {
		if err := set(s.dst, s.names...); err != nil {
			return Rule{}, err
		}
	}
	if rule.Device == "" {
		if err := set(&rule.Device, "os.device"); err != nil {
			return Rule{}, err
		}
	}
	if rule.Product == "" {
		// OS- or hardware-only fingerprints: name what they identify.
		for _, alt := range [][]string{{"service.family"}, {"os.vendor", "os.product"}, {"hw.vendor", "hw.product"}} {
			if err := set(&rule.Product, alt...); err != nil {
				return Rule{}, err
			}
			if rule.Product != "" {
				break
			}
		}
	}
	if rule.Product == "" {
		return Rule{}, skip("no product", "%s", fp.Description)
	}
	used := map[string]bool{"service.product": true, "service.vendor": true, "service.version": true,
		"os.vendor": true, "os.product": true, "os.version": true, "hw.device": true, "os.device": true,
		"service.edition": true}
	for _, name := range []string{"service.cpe23", "os.cpe23", "hw.cpe23"} {
		used[name] = true
		v, err := get(name)
		if err != nil {
			return Rule{}, err
		}
		if v == "" {
			continue
		}
		c, err := cpeURIToFS(v)
		if err != nil {
			return Rule{}, err
		}
		if strings.HasPrefix(c, "cpe:2.3:") {
			c = padCPE(c)
		}
		rule.CPE = append(rule.CPE, c)
	}
	for _, p := range fp.Params {
		if used[p.Name] {
			continue
		}
		v, err := get(p.Name)
		if err != nil {
			return Rule{}, err
		}
		if v == "" {
			continue
		}
		if rule.Extra == nil {
			rule.Extra = map[string]string{}
		}
		rule.Extra[strings.ToLower(p.Name)] = v
	}
	return rule, nil
}

// recogInterpolate replaces {name} by the named param's template.
func recogInterpolate(v string, vals map[string]string) (string, error) {
	if !strings.Contains(v, "{") {
		return v, nil
	}
	var b strings.Builder
	for {
		open := strings.IndexByte(v, '{')
		if open < 0 {
			b.WriteString(v)
			return b.String(), nil
		}
		if open > 0 && v[open-1] == '$' {
			// Already a template reference (${1}).
			end := strings.IndexByte(v[open:], '}')
			if end < 0 {
				return "", skip("bad template", "unterminated reference in %q", v)
			}
			b.WriteString(v[:open+end+1])
			v = v[open+end+1:]
			continue
		}
		end := strings.IndexByte(v[open:], '}')
		if end < 0 {
			return "", skip("bad template", "unterminated {name} in %q", v)
		}
		name := v[open+1 : open+end]
		sub, ok := vals[name]
		if !ok || strings.Contains(sub, "{") && !strings.HasPrefix(sub, "${") {
			return "", skip("bad template", "unknown interpolation {%s}", name)
		}
		b.WriteString(v[:open])
		b.WriteString(sub)
		v = v[open+end+1:]
	}
}

// padCPE fills a CPE 2.3 string given with fewer parts up to 13.
func padCPE(c string) string {
	n, err := splitCPE(c)
	if err != nil || len(n) >= cpeParts {
		return c
	}
	return c + strings.Repeat(":*", cpeParts-len(n))
}
