package web

import (
	_ "embed" // the world map
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/tag"
)

// windows are the overview's choices; "" is each panel's own default
// (the map 15 minutes, the others one hour).
var windows = []string{"15m", "1h", "24h", "7d"}

var windowLength = map[string]time.Duration{"15m": 15 * time.Minute, "1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

// overviewData is the four panels, each with the numbers the API gave.
type overviewData struct {
	Window    string   // the chosen window, "" for the defaults
	Windows   []string // the choices
	MapWindow string
	TagWindow string
	Countries []countryRow
	Total     int64
	Map       template.HTML // the world map (SVG), coloured
	Tags      []tagWord
	Matrix    matrixData
	Timeline  timelineData
	Verdicts  []store.Bucket
	Updated   string
}

type countryRow struct {
	Code  string
	Name  string
	Count int64
	Share float64 // of the window's events, in percent
	Level int     // colour step 0..5
}

type tagWord struct {
	Tag       string
	Name      string
	Count     int64
	Intention string
	Level     int // size step 0..5
}

func (s *Site) overview(w http.ResponseWriter, r *http.Request) {
	d, err := s.overviewData(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "overview", s.page("Overview", "overview", d))
}

// live is the overview's panels alone, for the script's refresh.
func (s *Site) live(w http.ResponseWriter, r *http.Request) {
	d, err := s.overviewData(r)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "live", s.page("", "", d))
}

func (s *Site) overviewData(r *http.Request) (*overviewData, error) {
	win := r.URL.Query().Get("window")
	if win != "" && !contains(windows, win) {
		return nil, &apiError{Status: http.StatusBadRequest, Body: api.ErrorBody{Error: fmt.Sprintf("window=%q: choose one of %s", win, strings.Join(windows, ", "))}}
	}
	d := &overviewData{Window: win, Windows: windows, MapWindow: or(win, "15m"), TagWindow: or(win, "1h"),
		Updated: time.Now().UTC().Format("15:04:05 UTC")}
	type stats struct {
		Buckets []store.Bucket `json:"buckets"`
	}
	var countries, tags, verdicts stats
	if err := s.call(r, "/api/v1/sensors/stats", url.Values{"by": {"src_country"}, "window": {d.MapWindow}, "limit": {"300"}}, &countries); err != nil {
		return nil, err
	}
	if err := s.call(r, "/api/v1/sensors/stats", url.Values{"by": {"tag"}, "window": {d.TagWindow}, "limit": {"60"}}, &tags); err != nil {
		return nil, err
	}
	if err := s.call(r, "/api/v1/sensors/stats", url.Values{"by": {"classification"}, "window": {d.TagWindow}, "limit": {"10"}}, &verdicts); err != nil {
		return nil, err
	}
	var matrix struct {
		Cells []store.Cell `json:"cells"`
	}
	if err := s.call(r, "/api/v1/sensors/matrix", url.Values{"window": {d.TagWindow}}, &matrix); err != nil {
		return nil, err
	}
	var timeline struct {
		Step   string         `json:"step"`
		Series []store.Series `json:"series"`
	}
	asked := time.Now().UTC() // the API's window starts a moment after this
	if err := s.call(r, "/api/v1/sensors/timeline", url.Values{"by": {"tag"}, "window": {d.TagWindow}, "top": {"5"}}, &timeline); err != nil {
		return nil, err
	}
	d.Verdicts = verdicts.Buckets
	d.Countries, d.Total = countryRows(countries.Buckets, s.world)
	d.Map = s.world.svg(d.Countries)
	d.Tags = tagCloud(tags.Buckets)
	d.Matrix = buildMatrix(matrix.Cells, s.world)
	step, err := time.ParseDuration(timeline.Step)
	if err != nil || step <= 0 {
		return nil, fmt.Errorf("timeline step %q from the API: %v", timeline.Step, err)
	}
	window := windowLength[d.TagWindow]
	d.Timeline = buildTimeline(timeline.Series, asked.Add(-window), window, step)
	return d, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// level puts a count on a six-step scale, logarithmic so that one loud
// country does not leave the others white.
func level(n, maxN int64) int {
	if n <= 0 || maxN <= 0 {
		return 0
	}
	if maxN == 1 {
		return 5
	}
	return 1 + int(math.Round(4*math.Log(float64(n))/math.Log(float64(maxN))))
}

func countryRows(b []store.Bucket, m *worldMap) ([]countryRow, int64) {
	var total, top int64
	for _, x := range b {
		total += x.Count
		top = max(top, x.Count)
	}
	rows := make([]countryRow, 0, len(b))
	for _, x := range b {
		rows = append(rows, countryRow{Code: x.Key, Name: m.name(x.Key), Count: x.Count,
			Share: 100 * float64(x.Count) / float64(max(total, 1)), Level: level(x.Count, top)})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Count > rows[j].Count })
	return rows, total
}

func tagCloud(b []store.Bucket) []tagWord {
	e := tag.Default()
	var top int64
	for _, x := range b {
		top = max(top, x.Count)
	}
	words := make([]tagWord, 0, len(b))
	for _, x := range b {
		w := tagWord{Tag: x.Key, Name: x.Key, Count: x.Count, Intention: "unknown"}
		if m, ok := e.Meta(x.Key); ok {
			w.Name, w.Intention = m.Name, m.Intention
		}
		w.Level = level(x.Count, top)
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool { return words[i].Tag < words[j].Tag }) // a cloud, not a ranking
	return words
}

// matrixData is the source x target heat map: the top rows and columns.
type matrixData struct {
	Src, Dst []string
	Names    map[string]string
	Rows     [][]matrixCell
	Total    int64
}

type matrixCell struct {
	Src, Dst string
	Count    int64
	Level    int
}

const matrixMax = 12

func buildMatrix(cells []store.Cell, m *worldMap) matrixData {
	srcT, dstT := map[string]int64{}, map[string]int64{}
	at := map[[2]string]int64{}
	var top, total int64
	for _, c := range cells {
		srcT[c.Src] += c.Count
		dstT[c.Dst] += c.Count
		at[[2]string{c.Src, c.Dst}] += c.Count
		top = max(top, c.Count)
		total += c.Count
	}
	d := matrixData{Src: topKeys(srcT, matrixMax), Dst: topKeys(dstT, matrixMax), Names: map[string]string{}, Total: total}
	for _, k := range append(append([]string{}, d.Src...), d.Dst...) {
		d.Names[k] = m.name(k)
	}
	for _, s := range d.Src {
		row := make([]matrixCell, 0, len(d.Dst))
		for _, t := range d.Dst {
			n := at[[2]string{s, t}]
			row = append(row, matrixCell{Src: s, Dst: t, Count: n, Level: level(n, top)})
		}
		d.Rows = append(d.Rows, row)
	}
	return d
}

func topKeys(m map[string]int64, n int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	if len(keys) > n {
		keys = keys[:n]
	}
	return keys
}

// timelineData is events over time by top tags, drawn as an SVG line chart.
type timelineData struct {
	Width, Height int
	Lines         []timelineLine
	MaxCount      int64
	Ticks         []timelineTick
}

type timelineLine struct {
	Key    string
	Points string // SVG polyline points
	Total  int64
	Class  int // colour index
}

type timelineTick struct {
	X      float64
	Label  string
	Anchor string // start, middle or end: the end ticks stay inside the chart
}

// buildTimeline draws every step of the window, zero where a tag had no
// events (the API lists only steps with events), so a burst is a spike and
// a single step still draws a line.
func buildTimeline(series []store.Series, since time.Time, window, step time.Duration) timelineData {
	d := timelineData{Width: 640, Height: 180}
	steps := int((window + step - 1) / step)
	if steps < 2 {
		steps = 2
	}
	counts := make([][]int64, len(series))
	for i, s := range series {
		counts[i] = make([]int64, steps)
		for _, p := range s.Points {
			k := int(p.Time.Sub(since) / step)
			k = min(max(k, 0), steps-1)
			counts[i][k] += p.Count
			d.MaxCount = max(d.MaxCount, counts[i][k])
		}
	}
	x := func(k int) float64 { return 4 + (float64(d.Width)-8)*float64(k)/float64(steps-1) }
	y := func(n int64) float64 {
		return float64(d.Height) - 4 - (float64(d.Height)-8)*float64(n)/float64(max(d.MaxCount, 1))
	}
	for i, s := range series {
		var b strings.Builder
		var total int64
		for k, n := range counts[i] {
			fmt.Fprintf(&b, "%.1f,%.1f ", x(k), y(n))
			total += n
		}
		d.Lines = append(d.Lines, timelineLine{Key: s.Key, Points: strings.TrimSpace(b.String()), Total: total, Class: i % 6})
	}
	layout := "15:04"
	if window > 2*24*time.Hour {
		layout = "Jan 2"
	}
	for i := 0; i <= 4; i++ {
		k := i * (steps - 1) / 4
		anchor := map[int]string{0: "start", 4: "end"}[i]
		d.Ticks = append(d.Ticks, timelineTick{X: x(k), Label: since.Add(time.Duration(k) * step).UTC().Format(layout), Anchor: or(anchor, "middle")})
	}
	return d
}

//go:embed static/world.json
var worldJSON []byte

// worldMap is the embedded world map (web/internal/mapgen made it).
type worldMap struct {
	Width, Height int
	Countries     []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		D    string `json:"d"`
	} `json:"countries"`
	names map[string]string
}

func loadWorld() (*worldMap, error) {
	var m worldMap
	if err := json.Unmarshal(worldJSON, &m); err != nil {
		return nil, fmt.Errorf("world map: %w", err)
	}
	m.names = map[string]string{}
	for _, c := range m.Countries {
		m.names[c.ID] = c.Name
	}
	return &m, nil
}

// name is a country's name, or its code when the map does not know it
// (user-assigned codes of an overrides file, say).
func (m *worldMap) name(code string) string {
	if code == "" {
		return "unknown"
	}
	if n, ok := m.names[code]; ok {
		return n
	}
	return code
}

// svg draws the map with every country coloured by its step; each shape
// carries its code and count (data-*) and a title for pointer and screen
// reader alike.
func (m *worldMap) svg(rows []countryRow) template.HTML {
	by := map[string]countryRow{}
	for _, r := range rows {
		by[r.Code] = r
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="world" viewBox="0 0 %d %d" role="img" aria-labelledby="map-title"><title id="map-title">Events per source country</title>`, m.Width, m.Height)
	for _, c := range m.Countries {
		r := by[c.ID]
		fmt.Fprintf(&b, `<path d="%s" class="c l%d" data-cc="%s" data-count="%d"><title>%s: %s events</title></path>`,
			c.D, r.Level, c.ID, r.Count, template.HTMLEscapeString(c.Name), strconv.FormatInt(r.Count, 10))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
