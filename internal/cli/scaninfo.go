package cli

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/route"
)

//go:embed scaninfo.html
var scanInfoHTML string

var scanInfoTmpl = template.Must(template.New("info").Parse(scanInfoHTML))

// infoData fills the page.
type infoData struct {
	Source, Contact, OptOutURL string
	Rate, Ports, ScanID        string
	Version                    uint64
}

// infoPage is the page `vantage scan --info-page` serves on the scanner's
// own address for the length of the scan: who scans, why, and how to opt
// out. The HTTP grabber's User-Agent points to it.
type infoPage struct {
	URL string // what the User-Agent names
	srv *http.Server
	ln  net.Listener
}

// startInfoPage listens on addr and serves the page; version, when set,
// gives the exclusion list version in force at each request.
func startInfoPage(addr, publicURL string, d infoData, version func() uint64) (*infoPage, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--info-page %s: %w", addr, err)
	}
	p := &infoPage{URL: publicURL, ln: ln}
	if p.URL == "" {
		p.URL = infoURL(ln.Addr().(*net.TCPAddr).AddrPort(), netip.Addr{})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		data := d
		if version != nil {
			data.Version = version()
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		scanInfoTmpl.Execute(w, data)
	})
	mux.HandleFunc("GET /robots.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "User-agent: *\nAllow: /\n")
	})
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	go p.srv.Serve(ln)
	return p, nil
}

// Addr is the address the page listens on.
func (p *infoPage) Addr() net.Addr { return p.ln.Addr() }

// Close stops serving.
func (p *infoPage) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		p.srv.Close()
	}
}

// infoURL is the page's URL as the scanned see it: the listening address,
// or the scanner's source address when it listens on every address.
func infoURL(listen netip.AddrPort, source netip.Addr) string {
	host := listen.Addr().Unmap()
	if host.IsUnspecified() || !host.IsValid() {
		host = source
	}
	h := "localhost"
	if host.IsValid() {
		h = host.String()
		if host.Is6() {
			h = "[" + h + "]"
		}
	}
	if listen.Port() != 80 {
		h += ":" + strconv.Itoa(int(listen.Port()))
	}
	return "http://" + h + "/"
}

// infoSource is the scanner's source address for the page's URL: the
// --source-ip, or the address of the route to the first target.
func infoSource(ctx context.Context, srcIP string, first netip.Addr) netip.Addr {
	if a, err := netip.ParseAddr(srcIP); err == nil {
		return a
	}
	if p, err := route.Lookup(ctx, first); err == nil && p.SrcIP.IsValid() {
		return p.SrcIP
	}
	return netip.Addr{}
}

// optOutURL is the server's public opt-out page.
func optOutURL(server string) string {
	if server == "" {
		return ""
	}
	return strings.TrimRight(server, "/") + "/optout"
}
