package query

import (
	"strconv"
	"strings"
)

// Facet limits.
const (
	DefaultFacetLimit = 10
	MaxFacetLimit     = 1000
)

// Facet is a field to count the values of, with how many top values to
// return.
type Facet struct {
	Field  string // canonical field name
	Column string // SQL column
	Kind   Kind
	List   bool // a list column: the facet counts its elements
	Limit  int
}

// Expr is the SQL expression whose values the facet counts: the column,
// or for a list column its elements, one row each. DuckDB allows unnest
// only in a subquery, not beside GROUP BY: Query builds that.
func (f Facet) Expr(d Dialect) string {
	if f.List {
		return d.Unnest(f.Column)
	}
	return f.Column
}

// Query is the facet's SQL for dialect d: the values of the field among
// the rows of table that match where (from Compile), as rows (v, n), most
// frequent first, at most Limit of them. Unknown values (NULL, and ” for
// strings) are not counted. Bind where's arguments and then f.Limit, for
// the final "LIMIT ?".
func (f Facet) Query(d Dialect, table, where string) string {
	if f.List {
		return "SELECT v, count(*) AS n FROM (SELECT " + d.Unnest(f.Column) + " AS v FROM " + table +
			" WHERE " + where + ") WHERE v IS NOT NULL AND v <> '' GROUP BY v ORDER BY n DESC, v LIMIT ?"
	}
	known := f.Column + " IS NOT NULL"
	switch f.Kind {
	case KindString, KindText, KindVersion:
		known += " AND " + f.Column + " <> ''"
	}
	return "SELECT " + f.Column + " AS v, count(*) AS n FROM " + table +
		" WHERE (" + where + ") AND " + known + " GROUP BY v ORDER BY n DESC, v LIMIT ?"
}

// ParseFacets parses a comma-separated list of facets, each a field name
// with an optional ":limit" ("country,org,product:20"), and checks each
// against the facetable fields of t: strings, text, numbers, versions,
// booleans and lists (not addresses, times or banner text). The default
// limit is 10, the largest 1000. The empty string gives no facets.
// Errors are *Error located in s.
func ParseFacets(s string, t Target) ([]Facet, error) {
	var out []Facet
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	seen := map[string]bool{}
	for start := 0; start <= len(s); {
		end := strings.IndexByte(s[start:], ',')
		if end < 0 {
			end = len(s)
		} else {
			end += start
		}
		f, err := parseFacet(s, start, end, t)
		if err != nil {
			err.Locate(s)
			return nil, err
		}
		if seen[f.Field] {
			err := errorf(Pos(start), Pos(end), "facet %s is listed twice", f.Field)
			err.Locate(s)
			return nil, err
		}
		seen[f.Field] = true
		out = append(out, f)
		start = end + 1
	}
	return out, nil
}

// parseFacet parses s[start:end], one facet.
func parseFacet(s string, start, end int, t Target) (Facet, *Error) {
	item := s[start:end]
	lead := len(item) - len(strings.TrimLeft(item, " \t"))
	item = strings.TrimSpace(item)
	pos := Pos(start + lead)
	if item == "" {
		return Facet{}, errorf(Pos(start), Pos(end), "empty facet")
	}
	name, limit := item, DefaultFacetLimit
	if i := strings.IndexByte(item, ':'); i >= 0 {
		name = item[:i]
		n, err := strconv.Atoi(item[i+1:])
		if err != nil || n < 1 || n > MaxFacetLimit {
			return Facet{}, errorf(pos+Pos(i+1), pos+Pos(len(item)), "facet limit must be a number 1-%d", MaxFacetLimit)
		}
		limit = n
	}
	name = strings.ToLower(name)
	npos, nend := pos, pos+Pos(len(name))
	f := lookup(t, name)
	if f == nil {
		if o := other(t); lookup(o, name) != nil {
			return Facet{}, errorf(npos, nend, "%s is %s; facet %s instead", name, what(o), o)
		}
		return Facet{}, unknownField(name, npos, nend, targetNames[t])
	}
	if !f.Facet {
		return Facet{}, errorf(npos, nend, "%s cannot be a facet (%s fields are not counted)", name, f.Kind)
	}
	return Facet{Field: f.Name, Column: f.Columns[0], Kind: f.Kind, List: f.Kind == KindList, Limit: limit}, nil
}
