// Package triage reads what a defender's edge logged and finds the source
// addresses in it, so that each can be asked about: is it Internet-wide
// noise, a known scanner, something malicious, or seen nowhere else (and
// so possibly aimed at you)? It reads, line by line and format by format:
//
//   - web server access logs (nginx and Apache "combined" and "common"):
//     the client address opens the line;
//   - iptables and nftables LOG lines: SRC= (and DPT= for the port);
//   - OpenSSH auth logs: "Failed password for ... from IP port N",
//     "Invalid user ... from IP", "Connection closed by [authenticating
//     user ...] IP port N" and the like;
//   - plain lists of addresses and CSV: the first field that is an address.
//
// Lines it cannot read are counted, never fatal; lines are bounded.
package triage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxLine bounds one line; longer lines are skipped (counted).
const MaxLine = 64 << 10

// Source is one address found in the log.
type Source struct {
	Addr      netip.Addr `json:"ip"`
	Hits      int        `json:"hits"`       // lines that named it
	Kinds     []string   `json:"kinds"`      // http, firewall, ssh, list
	Ports     []uint16   `json:"ports"`      // destination ports, when the log says (firewall)
	FirstLine int        `json:"first_line"` // 1-based
}

// Stats says how the reading went.
type Stats struct {
	Lines, Matched, Unreadable, TooLong int
}

var (
	reFirewall = regexp.MustCompile(`\bSRC=([0-9a-fA-F.:]+)`)
	reDPT      = regexp.MustCompile(`\bDPT=(\d{1,5})\b`)
	reSSH      = regexp.MustCompile(`\bsshd(?:-session)?\[\d+\]:.*?(?:from|by)\s+(?:invalid user \S+ |authenticating user \S+ |user \S+ )?\[?([0-9a-fA-F.:]+?)\]?(?:\s+port\s+\d+|$|\s)`)
	reWeb      = regexp.MustCompile(`^(\S+) \S+ \S+ \[[^\]]+\] "`)
)

// Read finds the sources in a log, in the order they first appear.
func Read(r io.Reader) ([]*Source, Stats, error) {
	var st Stats
	by := map[netip.Addr]*Source{}
	var order []*Source
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, tooLong, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return order, st, fmt.Errorf("triage: line %d: %w", st.Lines+1, err)
		}
		if line == "" && tooLong == false && errors.Is(err, io.EOF) {
			break
		}
		st.Lines++
		if tooLong {
			st.TooLong++
		} else if addr, kind, port, ok := parseLine(line); ok {
			st.Matched++
			s := by[addr]
			if s == nil {
				s = &Source{Addr: addr, FirstLine: st.Lines}
				by[addr] = s
				order = append(order, s)
			}
			s.Hits++
			if !slices.Contains(s.Kinds, kind) {
				s.Kinds = append(s.Kinds, kind)
			}
			if port != 0 && !slices.Contains(s.Ports, port) && len(s.Ports) < 64 {
				s.Ports = append(s.Ports, port)
			}
		} else if strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			st.Unreadable++
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	return order, st, nil
}

// readLine reads one line without its end; a line over MaxLine is
// consumed and reported as too long.
func readLine(br *bufio.Reader) (string, bool, error) {
	var b []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if len(b)+len(chunk) <= MaxLine {
			b = append(b, chunk...)
		} else {
			b = b[:0]
			for isPrefix && err == nil { // drain the rest of the line
				_, isPrefix, err = br.ReadLine()
			}
			return "", true, err
		}
		if err != nil || !isPrefix {
			return string(b), false, err
		}
	}
}

// parseLine finds the source address of one line, and the log kind.
func parseLine(line string) (netip.Addr, string, uint16, bool) {
	if m := reFirewall.FindStringSubmatch(line); m != nil {
		if a, ok := addr(m[1]); ok {
			var port uint16
			if p := reDPT.FindStringSubmatch(line); p != nil {
				n, _ := strconv.Atoi(p[1])
				port = uint16(min(n, 65535))
			}
			return a, "firewall", port, true
		}
	}
	if strings.Contains(line, "sshd") {
		if m := reSSH.FindStringSubmatch(line); m != nil {
			if a, ok := addr(m[1]); ok {
				return a, "ssh", 22, true
			}
		}
	}
	if m := reWeb.FindStringSubmatch(line); m != nil {
		if a, ok := addr(m[1]); ok {
			return a, "http", 0, true
		}
	}
	// a list or CSV: the first field that is an address
	for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '"' }) {
		if a, ok := addr(f); ok {
			return a, "list", 0, true
		}
	}
	return netip.Addr{}, "", 0, false
}

// addr reads an address (IPv4, IPv6, IPv6 in brackets, with or without a
// port); zones and unspecified addresses are not sources.
func addr(s string) (netip.Addr, bool) {
	s = strings.Trim(s, "[]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	if a.Zone() != "" || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a, true
}
