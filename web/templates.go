package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/monitor"
)

// pageNames are the templates in templates/, each drawn inside layout.html
// (live.html is the overview's panels alone).
var pageNames = []string{"overview", "live", "search", "ip", "about", "optout", "optout-status", "admin", "admin-login", "monitor", "monitor-login", "error"}

var funcs = template.FuncMap{
	"num":   num,
	"when":  when,
	"ago":   ago,
	"join":  strings.Join,
	"lower": strings.ToLower,
	"pct":   func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"bytes": func(b []byte) string { return printable(b, 1024) },
	"ports": func(p []uint16) string {
		s := make([]string, len(p))
		for i, x := range p {
			s[i] = strconv.Itoa(int(x))
		}
		return strings.Join(s, ", ")
	},
	"eventPort":    eventPort,
	"add":          func(a, b int) int { return a + b },
	"every":        func(d monitor.Duration) string { return shortDuration(time.Duration(d)) },
	"defaultPorts": func(p string) bool { return p == monitor.DefaultPorts },
	"day": func(t time.Time) string {
		if t.IsZero() {
			return "unknown"
		}
		return t.UTC().Format("2006-01-02")
	},
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/panels.html")
	if err != nil {
		return nil, fmt.Errorf("web templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFS, "templates/"+name+".html")
		}
		if err != nil {
			return nil, fmt.Errorf("web template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// num writes a count with thin groups: 1 234 567.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

// shortDuration writes 24h, 1h30m, 7d rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
