package fingerprint

import (
	"errors"
	"fmt"
	"maps"
	"regexp/syntax"
	"slices"
	"strings"
)

// Report says what an importer made of its input.
type Report struct {
	Source string
	// Total is the number of rules seen (match and softmatch lines,
	// fingerprint elements).
	Total int
	// Imported rules compiled under Go's regexp and are in the DB.
	Imported int
	// Skipped counts the rest by reason; Examples holds the first few of
	// each ("line 123: detail").
	Skipped  map[string]int
	Examples map[string][]string
	// Protocols counts imported rules by protocol.
	Protocols map[string]int
}

// maxExamples is how many examples a report keeps per reason.
const maxExamples = 3

func newReport(source string) Report {
	return Report{Source: source, Skipped: map[string]int{}, Examples: map[string][]string{}, Protocols: map[string]int{}}
}

// SkippedTotal is the number of rules not imported.
func (r *Report) SkippedTotal() int {
	n := 0
	for _, c := range r.Skipped {
		n += c
	}
	return n
}

func (r *Report) skip(where string, err error) {
	reason, detail := classify(err)
	r.Skipped[reason]++
	if len(r.Examples[reason]) < maxExamples {
		r.Examples[reason] = append(r.Examples[reason], where+": "+detail)
	}
}

// classify turns an import error into a fixed reason and a detail.
func classify(err error) (reason, detail string) {
	var se *skipError
	if errors.As(err, &se) {
		return se.reason, se.Error()
	}
	detail = err.Error()
	var re *ruleError
	if errors.As(err, &re) {
		switch {
		case errors.Is(err, errHelper):
			return "unsupported template helper", detail
		case re.field == "pattern":
			var ser *syntax.Error
			if errors.As(err, &ser) {
				return "go regexp: " + string(ser.Code), detail
			}
			return "go regexp", detail
		case re.field == "cpe":
			return "bad cpe", detail
		case re.field == "product":
			return "no product", detail
		default:
			return "bad template", detail
		}
	}
	return "other", detail
}

// String renders the report for a log.
func (r Report) String() string {
	var b strings.Builder
	pct := 0.0
	if r.Total > 0 {
		pct = 100 * float64(r.Imported) / float64(r.Total)
	}
	fmt.Fprintf(&b, "%s: %d rules, %d imported (%.1f%%), %d skipped\n", r.Source, r.Total, r.Imported, pct, r.SkippedTotal())
	reasons := slices.SortedFunc(maps.Keys(r.Skipped), func(a, b string) int {
		if r.Skipped[a] != r.Skipped[b] {
			return r.Skipped[b] - r.Skipped[a]
		}
		return strings.Compare(a, b)
	})
	for _, k := range reasons {
		fmt.Fprintf(&b, "  skipped %6d  %s\n", r.Skipped[k], k)
		for _, e := range r.Examples[k] {
			if len(e) > 160 {
				e = e[:160] + "..."
			}
			fmt.Fprintf(&b, "                  e.g. %s\n", e)
		}
	}
	if len(r.Protocols) > 0 {
		b.WriteString("  imported by protocol:")
		for _, p := range slices.Sorted(maps.Keys(r.Protocols)) {
			fmt.Fprintf(&b, " %s=%d", p, r.Protocols[p])
		}
		b.WriteByte('\n')
	}
	return b.String()
}
