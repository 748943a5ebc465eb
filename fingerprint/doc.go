// Package fingerprint identifies the software behind a grabbed service
// (product, vendor, version, CPE, OS, device) from the texts the grabber
// collected: the greeting or response head ("banner") and protocol fields
// such as an HTTP response's "server", "title", "headers" and "body".
//
//	m, ok := fingerprint.Identify("ssh", map[string]string{"banner": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"})
//	// m.Product "OpenSSH", m.Version "9.2p1", m.OS "Debian GNU/Linux 12",
//	// m.CPE ["cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*", "cpe:2.3:o:debian:debian_linux:12.0:*:*:*:*:*:*:*"]
//
// # Rules
//
// The built-in rules are TOML files embedded from rules/*.toml (see
// docs/fingerprints.md for a guide). A file may set a default protocol and
// field, then lists rules:
//
//	protocol = "ftp"            # default for the rules below
//
//	[[rule]]
//	id = "ftp.vsftpd"           # unique
//	field = "banner"            # the default: the text the pattern runs on
//	pattern = '(?m)^220[ -]\(vsFTPd (?P<ver>\d+\.\d+\.\d+)\)'
//	product = "vsftpd"
//	version = "${ver}"
//	cpe = "cpe:2.3:a:vsftpd_project:vsftpd:${ver}:*:*:*:*:*:*:*"
//
// Keys: id, protocol (a grab protocol name or "*"), field, pattern (Go
// RE2 syntax), bytes (match the field as bytes: \xff is the byte 0xff),
// product (required), vendor, version, info, os, device, cpe (a string or
// a list, CPE 2.3 formatted strings), extra (a table of further outputs)
// and prefilter (explicit literals, see below). Output fields are
// templates: $1..$9, ${n} or ${name} for capture groups, $0 for the whole
// match, $P(n) for group n's printable characters, $SUBST(n,"a","b") for
// group n with a replaced by b, $$ for a dollar sign. In a CPE, a group's
// value is bound as the CPE 2.3 formatted string wants it (lower case,
// punctuation escaped) and a part that comes out empty becomes "*".
//
// Loading validates every rule (the pattern compiles, templates refer to
// groups that exist, CPEs have their 13 parts, IDs are unique) and reports
// each error with the file, line and rule.
//
// # Matching
//
// Rules are tried in order (files in name order, rules in file order) and
// the first that matches wins; IdentifyAll returns every match. A rule
// whose product comes out empty does not count. Only a field's first
// MaxFieldBytes bytes are looked at.
//
// Identify never tries every rule. Rules are indexed by protocol and field,
// and each rule carries the literals its regexp cannot match without,
// derived from the parsed regexp (regexp/syntax) as clauses such as
// "contains ssh- and contains -openssh_" or "contains nginx or openresty".
// One pass of an Aho-Corasick automaton per field finds which literals a
// text holds, comparing ASCII case-insensitively (a superset of both the
// case-sensitive and the (?i) comparison, so no lower-cased copy of the
// field is made), and only the rules whose clauses all hold run their
// regexp. A rule with no usable literal runs whenever its protocol and
// field are present. The explicit prefilter key replaces the derived
// literals with a list of which one must occur.
//
// # Importing other databases
//
// ImportNmap reads nmap's nmap-service-probes and ImportRecog Recog's XML
// fingerprint files, translating their PCRE and Ruby regexps to Go's where
// the meaning carries over and skipping, with a Report of reasons, what Go
// cannot express (backreferences, lookaround, ...). Nothing of them is
// stored in this repository; a user who has them can load them behind the
// built-in rules with DB.Merge.
package fingerprint
