package fingerprint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// nmapServices maps nmap service names to grab protocol names where they
// correspond. Rules for other services get protocol "unknown" (the grabber
// gives that name to a service no module recognised) and keep the nmap
// name in Extra["service"].
var nmapServices = map[string]string{
	"ssh":           "ssh",
	"http":          "http",
	"http-proxy":    "http",
	"https":         "http",
	"ftp":           "ftp",
	"smtp":          "smtp",
	"submission":    "smtp",
	"smtps":         "smtp",
	"pop3":          "pop3",
	"pop3s":         "pop3",
	"imap":          "imap",
	"imaps":         "imap",
	"telnet":        "telnet",
	"vnc":           "vnc",
	"redis":         "redis",
	"memcached":     "memcached",
	"mqtt":          "mqtt",
	"mysql":         "mysql",
	"postgresql":    "postgres",
	"mongodb":       "mongodb",
	"mongod":        "mongodb",
	"ms-wbt-server": "rdp",
	"microsoft-ds":  "smb",
	"netbios-ssn":   "smb",
	"sip":           "sip",
	"sip-proxy":     "sip",
	"domain":        "dns",
	"ntp":           "ntp",
	"ssl":           "tls",
}

// ImportNmap reads nmap's nmap-service-probes format and converts its
// match lines into rules (protocol from the service name, field "banner",
// pattern translated from PCRE, p/v/i/h/o/d/cpe: into templates). Lines
// that Go cannot express are skipped and counted in the report; softmatch
// lines name a service but no product and are counted as skipped too.
// source names the input in rule IDs and sources ("source:line").
// The error is for an unreadable input only.
func ImportNmap(r io.Reader, source string) (*DB, Report, error) {
	rep := newReport(source)
	var rules []*compiledRule
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		kw, rest, _ := strings.Cut(line, " ")
		soft := kw == "softmatch"
		if kw != "match" && !soft {
			continue
		}
		rep.Total++
		where := fmt.Sprintf("line %d", lineNo)
		if soft {
			rep.skip(where, &skipError{reason: "softmatch (service only, no product)"})
			continue
		}
		rule, err := nmapRule(rest)
		if err != nil {
			rep.skip(where, err)
			continue
		}
		rule.ID = fmt.Sprintf("%s:%d", source, lineNo)
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
	if err := sc.Err(); err != nil {
		return nil, rep, fmt.Errorf("import nmap %s: line %d: %w", source, lineNo, err)
	}
	db, err := build(rules)
	if err != nil {
		return nil, rep, fmt.Errorf("import nmap %s: %w", source, err)
	}
	return db, rep, nil
}

// nmapRule parses what follows "match ": service, m<d>pattern<d>flags and
// the version info.
func nmapRule(s string) (Rule, error) {
	service, rest, ok := strings.Cut(s, " ")
	if !ok || service == "" {
		return Rule{}, skip("bad line", "no pattern")
	}
	rest = strings.TrimLeft(rest, " \t")
	if len(rest) < 2 || rest[0] != 'm' {
		return Rule{}, skip("bad line", "pattern does not start with m")
	}
	delim := rest[1]
	end := strings.IndexByte(rest[2:], delim)
	if end < 0 {
		return Rule{}, skip("bad line", "unterminated pattern")
	}
	pcre := rest[2 : 2+end]
	rest = rest[2+end+1:]
	var flags string
	for len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' {
		switch rest[0] {
		case 'i':
			flags += "i"
		case 's':
			flags += "s"
		default:
			return Rule{}, skip("bad line", "unknown pattern flag %q", rest[0])
		}
		rest = rest[1:]
	}
	pattern, err := translate(pcre, dialectPCRE)
	if err != nil {
		return Rule{}, err
	}
	if flags != "" {
		pattern = "(?" + flags + ")" + pattern
	}
	r := Rule{Pattern: pattern, Field: "banner", Bytes: true}
	name := strings.TrimPrefix(service, "ssl/")
	if p, ok := nmapServices[name]; ok {
		r.Protocol = p
	} else {
		r.Protocol = "unknown"
		r.Extra = map[string]string{"service": name}
	}
	if name != service {
		if r.Extra == nil {
			r.Extra = map[string]string{}
		}
		r.Extra["tunnel"] = "ssl"
	}
	if err := nmapVersionInfo(&r, rest); err != nil {
		return Rule{}, err
	}
	if r.Product == "" {
		return Rule{}, &skipError{reason: "no product (service only)", detail: service}
	}
	return r, nil
}

// nmapVersionInfo parses " p/.../ v/.../ cpe:/.../a ...".
func nmapVersionInfo(r *Rule, s string) error {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil
		}
		var key string
		switch {
		case strings.HasPrefix(s, "cpe:"):
			key, s = "cpe", s[4:]
		case len(s) >= 2 && strings.IndexByte("pvihod", s[0]) >= 0:
			key, s = s[:1], s[1:]
		default:
			return skip("bad line", "unknown version field at %q", excerptStart(s))
		}
		if s == "" {
			return skip("bad line", "version field %s without value", key)
		}
		d := s[0]
		end := strings.IndexByte(s[1:], d)
		if end < 0 {
			return skip("bad line", "unterminated version field %s", key)
		}
		val := s[1 : 1+end]
		s = s[1+end+1:]
		// Flags after a field (nmap's "a" after cpe:): ignored.
		for len(s) > 0 && s[0] != ' ' && s[0] != '\t' {
			s = s[1:]
		}
		switch key {
		case "p":
			r.Product = val
		case "v":
			r.Version = val
		case "i":
			r.Info = val
		case "h":
			if r.Extra == nil {
				r.Extra = map[string]string{}
			}
			r.Extra["hostname"] = val
		case "o":
			r.OS = val
		case "d":
			r.Device = val
		case "cpe":
			c, err := cpeURIToFS("cpe:/" + val)
			if err != nil {
				return err
			}
			r.CPE = append(r.CPE, c)
		}
	}
}

func excerptStart(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// cpeURIToFS converts a CPE 2.2 URI template ("cpe:/a:vendor:product:$1")
// into a CPE 2.3 formatted-string template, leaving template references
// as they are (their values are escaped when a rule matches).
func cpeURIToFS(uri string) (string, error) {
	body, ok := strings.CutPrefix(uri, "cpe:/")
	if !ok {
		if strings.HasPrefix(uri, "cpe:2.3:") {
			return uri, nil
		}
		return "", skip("bad cpe", "%q is not a CPE URI", uri)
	}
	raw, err := splitCPE(body)
	if err != nil {
		return "", skip("bad cpe", "%v", err)
	}
	if len(raw) > 7 {
		return "", skip("bad cpe", "%q has too many parts", uri)
	}
	parts := make([]string, cpeParts-2)
	for i := range parts {
		parts[i] = "*"
	}
	packed := len(raw) > 5 && strings.HasPrefix(raw[5], "~")
	for i, p := range raw {
		if i == 5 && packed {
			continue
		}
		v, err := uriPartToFS(p)
		if err != nil {
			return "", skip("bad cpe", "%q: %v", uri, err)
		}
		if v == "" {
			v = "*"
		}
		parts[i] = v
	}
	// A packed edition "~edition~sw_edition~target_sw~target_hw~other".
	if packed {
		slots := []int{5, 7, 8, 9, 10}
		for k, v := range strings.Split(raw[5][1:], "~") {
			if k >= len(slots) {
				break
			}
			fs, err := uriPartToFS(v)
			if err != nil {
				return "", skip("bad cpe", "%q: %v", uri, err)
			}
			if fs == "" {
				fs = "*"
			}
			parts[slots[k]] = fs
		}
	}
	return "cpe:2.3:" + strings.Join(parts, ":"), nil
}

// uriPartToFS decodes one CPE URI component (percent-encoding) and binds it
// for a formatted string, copying template references unchanged.
func uriPartToFS(p string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '$' && i+1 < len(p) {
			n := templateRefLen(p[i:])
			if n > 0 {
				b.WriteString(p[i : i+n])
				i += n - 1
				continue
			}
		}
		if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			v, _ := strconv.ParseUint(p[i+1:i+3], 16, 8)
			c = byte(v)
			i += 2
		}
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
			b.WriteByte(c)
		case c == '~' && i == 0:
			b.WriteByte('-') // "~" alone would be a packed edition; "-" is NA
		case c > ' ' && c <= '~':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('_')
		default:
			return "", errors.New("non-printable character")
		}
	}
	return b.String(), nil
}

// templateRefLen is the length of the template reference at the start of
// s ("$1", "${x}", "$P(1)", "$SUBST(1,"a","b")", "$I(1,">")"), or 0.
func templateRefLen(s string) int {
	if len(s) < 2 || s[0] != '$' {
		return 0
	}
	switch c := s[1]; {
	case c >= '0' && c <= '9':
		return 2
	case c == '{':
		if e := strings.IndexByte(s, '}'); e > 0 {
			return e + 1
		}
	case c >= 'A' && c <= 'Z':
		if p := strings.IndexByte(s, '('); p > 0 {
			if e := strings.IndexByte(s[p:], ')'); e > 0 {
				return p + e + 1
			}
		}
	}
	return 0
}
