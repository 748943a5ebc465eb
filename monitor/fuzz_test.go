package monitor

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/vantagehq/vantage/query"
)

// FuzzWatchlist feeds the API's watchlist bodies through decoding and
// Normalize: a watchlist it accepts normalizes to itself again, and the
// query that selects its hosts always compiles (no entry can change the
// query's meaning: quotes and backslashes are refused).
func FuzzWatchlist(f *testing.F) {
	for _, s := range []string{
		`{"name":"corp","cidrs":["198.51.100.0/24"],"domains":["example.com"]}`,
		`{"name":"a","asns":[64500],"orgs":["Example, Inc."],"cert_subjects":["O=Example"],"every":"6h","ports":"22,80-90"}`,
		`{"name":"x","orgs":["a\" OR port:22"]}`,
		`{"name":"x","cidrs":["2001:db8::/32","10.0.0.1"],"webhooks":[{"url":"https://h/x","secret":"s"}],"emails":["a@b.c"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var w Watchlist
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if dec.Decode(&w) != nil || w.Normalize() != nil {
			return
		}
		once, _ := json.Marshal(w)
		var again Watchlist
		if err := json.Unmarshal(once, &again); err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if err := again.Normalize(); err != nil {
			t.Fatalf("normalized watchlist refused: %v\n%s", err, once)
		}
		twice, _ := json.Marshal(again)
		if !bytes.Equal(once, twice) {
			t.Fatalf("normalize is not stable:\n%s\n%s", once, twice)
		}
		if q := selectQuery(w); q != "" {
			if _, _, err := query.CompileQuery(q, query.Services, query.DuckDB, time.Now()); err != nil {
				t.Fatalf("select query %q: %v", q, err)
			}
		}
	})
}
