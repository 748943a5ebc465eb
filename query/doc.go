// Package query is Vantage's search language: a lexer, a parser that
// builds a tree with positions, a printer that prints the tree back as a
// query, errors that point at a column, the registry of searchable fields
// of each target (services and sensor events), and a compiler that turns
// a tree into a parameterised SQL WHERE fragment for DuckDB or ClickHouse.
//
// The language is a superset of what Shodan, BinaryEdge and GreyNoise
// users type; Syntax is its summary for users. Typical use:
//
//	n, err := query.Parse(`port:22 country:DE product:openssh version:<8.0`)
//	where, args, err := query.Compile(n, query.Services, query.DuckDB, time.Now())
//	rows, err := db.Query("SELECT ... FROM services WHERE "+where, args...)
//
// Every value from the query is a bind argument; the SQL text holds only
// column names and SQL the package writes itself.
package query

// Syntax is the user's summary of the query language (`vantage help
// query` prints it with the field list of each target, from Fields).
const Syntax = `Search syntax

  nginx                     free text: the banner (services) or payload (events)
                            contains it, ignoring case
  "Welcome to nginx"        a quoted phrase, taken literally
  field:value               a field matches a value: port:22 product:openssh
  field:"two words"         quote values with spaces, commas or parentheses;
                            inside quotes \" is a quote and \\ a backslash
  a b    a AND b            both (AND is implicit between terms)
  a OR b                    either
  NOT a    -a    -"text"    not
  ( ... )                   grouping. NOT binds tighter than AND, AND tighter
                            than OR: a b OR c is (a AND b) OR c
  AND, OR, NOT and TO are upper case; and, or, not are ordinary words.

Values
  port:80,443               a list: any of the values
  port:>1024  port:<=100    comparisons (numbers, versions, times)
  port:[1000 TO 2000]       a range with its bounds; {1000 TO 2000} without
                            them; [1000 TO 2000} mixes; * is an open bound
  product:open*             wildcards in bare values: * any run of characters,
  http.server:*nginx*       ? one character (quoted values are literal)
  field:*                   the field has a value
  _exists_:http.title       the same: set and not empty
  version:<8.0              versions compare part by part, numbers as numbers:
  version:[7.0 TO 8.9]      7.4p1 < 7.10 < 8.0 < 8.0p1; 8 < 8.0
  version:8.*               version:8.0 is that version, 8.* starts with 8.
  ip:203.0.113.7            an address, IPv4 or IPv6 (ip:2001:db8::1)
  net:203.0.113.0/24        a network (ip: with a prefix is the same)
  ip:203.0.113.*            IPv4 with trailing * parts is a network too
  last_seen:1h              seen within the last 15m, 1h, 7d, 2w (s m h d w)
  last_seen:>7d             compared, a duration is an age: not seen for 7 days
  last_seen:2026-11-01      that day (UTC); comparisons and ranges of dates and
                            RFC 3339 times: last_seen:[2026-11-01 TO 2026-11-07]
  after:2026-11-01          at or after a date, an RFC 3339 time or an age (7d)
  before:2026-11-08         before it; after:X before:Y is [X, Y)
  has:tls                   has:http has:tls has:ssh has:vuln (services),
                            has:http has:payload (events)
  asn:AS13335               the same as asn:13335
  tag:RDP_SCANNER           list fields (tag, vuln, cpe, tls.san) match when an
  cpe:cpe:2.3:a:openbsd:*   element matches

Matching
  Keyword fields (port, country, protocol, tag, hashes ...) match exactly;
  country, tag, vuln and hashes are put in their stored case first, and
  product and actor ignore case. Text fields (http.title, http.server, org,
  tls.subject, banner, payload ...) match a substring, ignoring case; with
  a wildcard the pattern covers the whole value: http.server:nginx* starts
  with nginx. A negation also matches records where the field is unknown:
  -country:CN keeps addresses without a country.

Limits
  A query is at most 4096 bytes and nests at most 64 levels.
`
