// Package tag turns what reached a sensor into tags: actions
// (ICMP_ECHO_REQUEST, TCP_SYN, SSH_SCANNER, ...), tools recognised from
// packet and payload fingerprints (ZMAP, MASSCAN, NMAP, MIRAI, ...),
// exploitation attempts with their CVEs (LOG4SHELL, SHELLSHOCK, ...) and
// actors (SHODAN, CENSYS, ...), and gives each source a verdict: benign,
// malicious or unknown, with the evidence behind it.
//
// Rules are data: TOML files in our own format (tag/rules/*.toml, compiled
// into the binary; docs/tags.md documents the format). Actors come from a
// ranges file of our own (tag/rules/actors/actors.toml) to which published
// scanner lists are imported with ImportRanges; forward-confirmed reverse
// DNS goes through a Resolver the caller provides, so the engine itself
// never does DNS.
package tag
