// Command mapgen turns the world map of the npm package @svg-maps/world
// (pinned in web/npm/package-lock.json, CC BY 4.0, from MapSVG) into the
// small file the web UI embeds: one simplified SVG path per country, keyed
// by ISO 3166-1 alpha-2 code. The package's paths carry five decimals for
// a 1010-unit-wide map; the overview draws it about 700 pixels wide, so
// half a unit is finer than a pixel. Run by scripts/webassets.sh:
//
//	go run ./web/internal/mapgen -in web/npm/node_modules/@svg-maps/world/index.js -out web/static/world.json
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// scale turns map units into output units: output coordinates are integers.
const scale = 2

// tolerance is the Douglas-Peucker tolerance in output units.
const tolerance = 0.6

type source struct {
	ViewBox   string `json:"viewBox"`
	Locations []struct {
		Name string `json:"name"`
		ID   string `json:"id"`
		Path string `json:"path"`
	} `json:"locations"`
}

// Country is one shape of the output.
type Country struct {
	ID   string `json:"id"` // ISO 3166-1 alpha-2, upper case
	Name string `json:"name"`
	D    string `json:"d"` // SVG path data in output units
}

// Map is the output file.
type Map struct {
	Source    string    `json:"source"`
	License   string    `json:"license"`
	Width     int       `json:"width"`
	Height    int       `json:"height"`
	Countries []Country `json:"countries"`
}

func main() {
	in := flag.String("in", "web/npm/node_modules/@svg-maps/world/index.js", "the package's index.js")
	out := flag.String("out", "web/static/world.json", "output file")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mapgen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("read the map package (run scripts/webassets.sh): %w", err)
	}
	raw = bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(raw), []byte("export default")))
	raw = bytes.TrimSuffix(raw, []byte(";"))
	var src source
	if err := json.Unmarshal(raw, &src); err != nil {
		return fmt.Errorf("parse %s: %w", in, err)
	}
	var vb [4]float64
	if _, err := fmt.Sscanf(src.ViewBox, "%g %g %g %g", &vb[0], &vb[1], &vb[2], &vb[3]); err != nil {
		return fmt.Errorf("viewBox %q: %w", src.ViewBox, err)
	}
	m := Map{
		Source:  "@svg-maps/world 2.0.0 (MapSVG), simplified by web/internal/mapgen",
		License: "CC BY 4.0, https://creativecommons.org/licenses/by/4.0/",
		Width:   int(math.Round(vb[2] * scale)), Height: int(math.Round(vb[3] * scale)),
	}
	for _, l := range src.Locations {
		rings, err := parsePath(l.Path)
		if err != nil {
			return fmt.Errorf("%s: %w", l.ID, err)
		}
		d := encode(rings)
		if d == "" {
			d = dot(rings) // too small to draw at this size: a dot still takes a colour
		}
		m.Countries = append(m.Countries, Country{ID: strings.ToUpper(l.ID), Name: l.Name, D: d})
	}
	sort.Slice(m.Countries, func(i, j int) bool { return m.Countries[i].ID < m.Countries[j].ID })
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

type point struct{ x, y float64 }

// parsePath reads the subset of SVG path data the package uses: relative
// moveto with implicit relative linetos, and closepath.
func parsePath(d string) ([][]point, error) {
	var rings [][]point
	var cur []point
	var pos, start point
	fields := strings.FieldsFunc(d, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' || r == '\t' })
	cmd := byte(0)
	first := false
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		switch f {
		case "m", "M", "l", "L":
			cmd, first = f[0], f[0] == 'm' || f[0] == 'M'
			continue
		case "z", "Z":
			if len(cur) > 0 {
				rings = append(rings, cur)
			}
			cur, pos = nil, start
			continue
		}
		if i+1 >= len(fields) {
			return nil, fmt.Errorf("odd coordinate count at %q", f)
		}
		x, err1 := strconv.ParseFloat(f, 64)
		y, err2 := strconv.ParseFloat(fields[i+1], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad coordinate pair %q %q", f, fields[i+1])
		}
		i++
		switch cmd {
		case 'm', 'l':
			pos = point{pos.x + x, pos.y + y}
		case 'M', 'L':
			pos = point{x, y}
		default:
			return nil, fmt.Errorf("coordinates before a command")
		}
		if first {
			if len(cur) > 0 {
				rings = append(rings, cur)
			}
			cur, start, first = nil, pos, false
			cmd = map[byte]byte{'m': 'l', 'M': 'L'}[cmd]
		}
		cur = append(cur, pos)
	}
	if len(cur) > 0 {
		rings = append(rings, cur)
	}
	return rings, nil
}

// encode simplifies each ring, rounds it to whole output units and writes
// it as relative path data; rings that collapse to less than a triangle go.
func encode(rings [][]point) string {
	var b strings.Builder
	for _, r := range rings {
		for i := range r {
			r[i] = point{r[i].x * scale, r[i].y * scale}
		}
		r = simplify(r, tolerance)
		var pts [][2]int
		for _, p := range r {
			q := [2]int{int(math.Round(p.x)), int(math.Round(p.y))}
			if len(pts) == 0 || pts[len(pts)-1] != q {
				pts = append(pts, q)
			}
		}
		if len(pts) > 1 && pts[0] == pts[len(pts)-1] {
			pts = pts[:len(pts)-1]
		}
		if len(pts) < 3 {
			continue
		}
		fmt.Fprintf(&b, "M%d %d", pts[0][0], pts[0][1])
		b.WriteByte('l')
		for i := 1; i < len(pts); i++ {
			dx, dy := pts[i][0]-pts[i-1][0], pts[i][1]-pts[i-1][1]
			if i > 1 && dx >= 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(dx))
			if dy >= 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(dy))
		}
		b.WriteByte('z')
	}
	return b.String()
}

// dot is a small circle at the centre of a country's points.
func dot(rings [][]point) string {
	var sx, sy float64
	n := 0
	for _, r := range rings {
		for _, p := range r {
			sx, sy, n = sx+p.x, sy+p.y, n+1
		}
	}
	if n == 0 {
		return ""
	}
	x, y := int(math.Round(sx/float64(n))), int(math.Round(sy/float64(n)))
	return fmt.Sprintf("M%d %da3 3 0 1 0 6 0a3 3 0 1 0-6 0z", x-3, y)
}

// simplify is Douglas-Peucker on an open polyline (the ring's first point
// is kept, and so is the point farthest from it, so the ring stays closed).
func simplify(r []point, tol float64) []point {
	if len(r) < 4 {
		return r
	}
	far, fd := 0, -1.0
	for i, p := range r {
		if d := math.Hypot(p.x-r[0].x, p.y-r[0].y); d > fd {
			far, fd = i, d
		}
	}
	a := dp(r[:far+1], tol)
	b := dp(append(r[far:], r[0]), tol)
	return append(a[:len(a)-1], b[:len(b)-1]...)
}

func dp(pts []point, tol float64) []point {
	if len(pts) < 3 {
		return pts
	}
	a, b := pts[0], pts[len(pts)-1]
	idx, maxd := 0, -1.0
	for i := 1; i < len(pts)-1; i++ {
		if d := segDist(pts[i], a, b); d > maxd {
			idx, maxd = i, d
		}
	}
	if maxd <= tol {
		return []point{a, b}
	}
	left := dp(pts[:idx+1], tol)
	right := dp(pts[idx:], tol)
	return append(left[:len(left)-1], right...)
}

func segDist(p, a, b point) float64 {
	dx, dy := b.x-a.x, b.y-a.y
	l2 := dx*dx + dy*dy
	if l2 == 0 {
		return math.Hypot(p.x-a.x, p.y-a.y)
	}
	t := math.Max(0, math.Min(1, ((p.x-a.x)*dx+(p.y-a.y)*dy)/l2))
	return math.Hypot(p.x-(a.x+t*dx), p.y-(a.y+t*dy))
}
