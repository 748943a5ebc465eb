package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// The facets a search shows unless the visitor names others.
const (
	serviceFacets = "country,org,port,product,version"
	eventFacets   = "src.country,tag,classification,dst.port,actor"
	pageRows      = 50
)

type searchData struct {
	Target   string // services or events
	Query    string
	Facets   string
	Error    *queryError
	Total    int64
	Services []store.Service
	Events   []record.Event
	Groups   []facetGroup
	Next     string // link to the next page
	Export   map[string]string
	Searched bool
}

type queryError struct {
	Message string
	Column  int
	Caret   string
}

type facetGroup struct {
	Field  string
	Values []facetLink
}

type facetLink struct {
	Value string
	Count int64
	Href  string // the query narrowed to this value
}

func (s *Site) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := searchData{Target: "services", Query: q.Get("q"), Facets: q.Get("facets"), Searched: q.Has("q")}
	if q.Get("t") == "events" {
		d.Target = "events"
	}
	if d.Facets == "" {
		d.Facets = serviceFacets
		if d.Target == "events" {
			d.Facets = eventFacets
		}
	}
	status := http.StatusOK
	if d.Searched {
		params := url.Values{"q": {d.Query}, "facets": {d.Facets}, "limit": {"50"}}
		if c := q.Get("cursor"); c != "" {
			params.Set("cursor", c)
		}
		var res struct {
			Total    int64                         `json:"total"`
			Services []store.Service               `json:"services"`
			Events   []record.Event                `json:"events"`
			Facets   map[string][]store.FacetValue `json:"facets"`
			Next     string                        `json:"next"`
		}
		path := "/api/v1/search"
		if d.Target == "events" {
			path = "/api/v1/sensors/search"
		}
		err := s.call(r, path, params, &res)
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
			status = http.StatusBadRequest
			msg := ae.Body.Error
			if ae.Body.Column > 0 { // the page says where; the message need not ("1:17: ...")
				msg = strings.TrimPrefix(msg, fmt.Sprintf("%d:%d: ", ae.Body.Line, ae.Body.Column))
			}
			d.Error = &queryError{Message: msg, Column: ae.Body.Column, Caret: ae.Body.Caret}
		case err != nil:
			s.errorPage(w, r, err)
			return
		default:
			d.Total, d.Services, d.Events = res.Total, res.Services, res.Events
			for _, f := range strings.Split(d.Facets, ",") {
				name, _, _ := strings.Cut(strings.TrimSpace(f), ":")
				vals, ok := res.Facets[name]
				if !ok {
					continue
				}
				g := facetGroup{Field: name}
				for _, v := range vals {
					g.Values = append(g.Values, facetLink{Value: v.Value, Count: v.Count,
						Href: searchHref(d.Target, narrow(d.Query, name, v.Value), q.Get("facets"), "")})
				}
				d.Groups = append(d.Groups, g)
			}
			if res.Next != "" {
				d.Next = searchHref(d.Target, d.Query, q.Get("facets"), res.Next)
			}
			if d.Target == "services" {
				d.Export = map[string]string{}
				for _, f := range []string{"jsonl", "csv"} {
					d.Export[f] = "/api/v1/search?" + url.Values{"q": {d.Query}, "format": {f}}.Encode()
				}
			}
		}
	}
	p := s.page("Search", "search", d)
	p.Query = d.Query
	s.render(w, r, status, "search", p)
}

// searchHref links to a search page.
func searchHref(target, q, facets, cursor string) string {
	v := url.Values{"q": {q}}
	if target == "events" {
		v.Set("t", "events")
	}
	if facets != "" {
		v.Set("facets", facets)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	return "/search?" + v.Encode()
}

// narrow adds field:value to a query (AND); an empty value narrows to
// records without the field.
func narrow(q, field, value string) string {
	term := field + ":" + quoteValue(value)
	if value == "" {
		term = "-" + field + ":*"
	}
	q = strings.TrimSpace(q)
	if q == "" {
		return term
	}
	// AND binds tighter than OR: a term added to "a OR b" would join b
	// alone, so a query whose top is an OR (the parser says, not a
	// guess at the text) is grouped first
	if ast, err := query.Parse(q); err != nil || isOr(ast) {
		return "(" + q + ") " + term
	}
	return q + " " + term
}

func isOr(n query.Node) bool {
	_, ok := n.(*query.Or)
	return ok
}

// quoteValue quotes a value unless it is one plain word of letters,
// digits and . _ / + @ - (the query language gives spaces, commas,
// parentheses, quotes, comparisons and wildcards meanings in bare values).
func quoteValue(v string) string {
	plain := v != "" && !strings.HasPrefix(v, "-") && v != "AND" && v != "OR" && v != "NOT" && v != "TO"
	for _, r := range v {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._/+@-", r) {
			plain = false
			break
		}
	}
	if plain {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// ipForm sends the IP box's address to its page.
func (s *Site) ipForm(w http.ResponseWriter, r *http.Request) {
	ip := strings.TrimSpace(r.URL.Query().Get("ip"))
	if ip == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ip/"+url.PathEscape(ip), http.StatusSeeOther)
}
