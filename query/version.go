package query

import (
	"strconv"
	"strings"
)

// VersionWidth is the width numeric components are zero-padded to in a
// version key.
const VersionWidth = 10

// VersionKey maps a version string to a key whose byte-wise (lexical)
// order is version order, so a store can index and compare versions as
// plain strings: the store keeps version_key = VersionKey(version), and
// version:<8.0 compiles to version_key < VersionKey("8.0").
//
// The rule, exactly:
//
//  1. ASCII letters are lower-cased.
//  2. The string is cut into maximal runs of digits (numbers), of ASCII
//     letters a-z (words), and of anything else (separators: ".", "-",
//     "_", "+", spaces, non-ASCII...).
//  3. Leading and trailing separators are dropped, and then a leading
//     word "v" right before a number ("v1.2" is "1.2").
//  4. Each run is written as: a separator as one "."; a word as itself;
//     a number without its leading zeros, left-padded with "0" to 10
//     digits; a number of more than 10 digits as ":", its digit count in
//     two digits, and its digits (longer than 99 digits: the first 99).
//
// The order this gives compares versions run by run: numbers
// numerically, words lexically, separator < number < word at the same
// place, and a version that is a prefix of another first. So
// 7.4 < 7.4p1 < 7.10 < 8.0 < 8.0.1 < 8.0p1, and 1.0 < 1.0rc1 (pre-release
// tags are not special). All separators are equal ("7-4" == "7.4"), and
// so are leading zeros ("7.04" == "7.4").
func VersionKey(v string) string {
	runs := versionRuns(v)
	var b strings.Builder
	for _, r := range runs {
		switch {
		case r == ".":
			b.WriteByte('.')
		case r[0] >= '0' && r[0] <= '9':
			d := strings.TrimLeft(r, "0")
			if len(d) <= VersionWidth {
				b.WriteString(strings.Repeat("0", VersionWidth-len(d)))
				b.WriteString(d)
			} else {
				if len(d) > 99 {
					d = d[:99]
				}
				b.WriteByte(':') // sorts after every digit, before every letter
				b.WriteString(strconv.Itoa(len(d)))
				b.WriteString(d)
			}
		default:
			b.WriteString(r)
		}
	}
	return b.String()
}

// versionRuns applies steps 1-3 of VersionKey: the runs of v, with every
// separator run as ".".
func versionRuns(v string) []string {
	class := func(c byte) int {
		switch {
		case c >= '0' && c <= '9':
			return 1
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			return 2
		}
		return 0
	}
	var runs []string
	for i := 0; i < len(v); {
		c := class(v[i])
		j := i + 1
		for j < len(v) && class(v[j]) == c {
			j++
		}
		switch c {
		case 0:
			runs = append(runs, ".")
		case 1:
			runs = append(runs, v[i:j])
		default:
			runs = append(runs, strings.ToLower(v[i:j]))
		}
		i = j
	}
	if len(runs) > 0 && runs[0] == "." {
		runs = runs[1:]
	}
	if len(runs) > 0 && runs[len(runs)-1] == "." {
		runs = runs[:len(runs)-1]
	}
	if len(runs) > 1 && runs[0] == "v" && runs[1][0] >= '0' && runs[1][0] <= '9' {
		runs = runs[1:]
	}
	return runs
}
