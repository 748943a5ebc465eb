package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/monitor"
)

// The monitor page is the defenders' side: watchlists, their alerts and
// mutes, through the API's monitor endpoints with a key that has the
// monitor scope (or admin). It keeps the key like the admin pages do (the
// same HttpOnly, SameSite=Strict cookie), refuses POSTs from other sites,
// and answers every POST with a redirect back to /monitor (303), with the
// API's refusal in ?error= or what was done in ?done=.

type monitorData struct {
	Error  string
	Done   string
	Lists  []listView
	Alerts []alertView
	Total  int    // alerts in the view, before the page's limit
	View   string // open or acked
	Muted  bool   // muted alerts shown too
	Links  struct{ Open, Acked, Muted string }
	Mutes  []monitor.Mute
	Form   watchlistForm
	Kinds  []string
}

// listView is a watchlist with its pending job's progress.
type listView struct {
	monitor.View
	Job *job.Status
}

// alertView is an alert with its evidence put in words.
type alertView struct {
	monitor.Alert
	Where    string
	Change   string // before → after, for a change
	Search   string // a link to the records behind it
	Sent     string // how the notifiers fared
	SentOK   bool
	MutePort string // the port a "mute host:port" button mutes ("" = every port)
}

// watchlistForm is the add-or-replace form's fields, as typed.
type watchlistForm struct {
	Name, CIDRs, ASNs, Orgs, Subjects, Domains, Ports, Every, Rate string
	WebhookURL, Emails                                             string
	SecretSet                                                      bool // the webhook shown has a secret stored
	MoreHooks                                                      int  // webhooks the form does not show (it keeps only one)
	Editing                                                        bool
}

const alertLimit = 200

func (s *Site) monitor(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(keyCookie); err != nil && r.Header.Get("Authorization") == "" {
		s.render(w, r, http.StatusOK, "monitor-login", s.page("Monitor", "monitor", monitorData{}))
		return
	}
	var form watchlistForm
	s.monitorPage(w, r, http.StatusOK, form, r.URL.Query().Get("error"))
}

// monitorPage draws the page: with form as typed (after a refusal) or
// filled from ?edit=NAME.
func (s *Site) monitorPage(w http.ResponseWriter, r *http.Request, status int, form watchlistForm, errMsg string) {
	d := monitorData{Error: errMsg, Done: r.URL.Query().Get("done"), View: monitor.Open, Kinds: monitor.Kinds, Form: form}
	var lists struct {
		Watchlists []monitor.View `json:"watchlists"`
	}
	err := s.call(r, "/api/v1/monitors", nil, &lists)
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		d.Error = ae.Body.Error
		s.render(w, r, ae.Status, "monitor-login", s.page("Monitor", "monitor", d))
		return
	}
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		s.errorPage(w, r, &apiError{Status: http.StatusNotFound, Body: errBody("this server runs no monitor")})
		return
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	for _, l := range lists.Watchlists {
		v := listView{View: l}
		if id := l.State.PendingJob; id != "" {
			var st job.Status
			if s.call(r, "/api/v1/jobs/"+url.PathEscape(id), nil, &st) == nil {
				v.Job = &st
			}
		}
		d.Lists = append(d.Lists, v)
	}
	if name := r.URL.Query().Get("edit"); name != "" && form.Name == "" {
		for _, l := range d.Lists {
			if l.Name == name {
				d.Form = formOf(l.Watchlist)
			}
		}
	}
	q := url.Values{"limit": {strconv.Itoa(alertLimit)}, "state": {monitor.Open}}
	if r.URL.Query().Get("alerts") == monitor.Acked {
		d.View = monitor.Acked
		q.Set("state", monitor.Acked)
	}
	if r.URL.Query().Get("muted") == "1" {
		d.Muted = true
		q.Set("muted", "true")
	}
	link := func(acked, muted bool) string {
		v := url.Values{}
		if acked {
			v.Set("alerts", monitor.Acked)
		}
		if muted {
			v.Set("muted", "1")
		}
		if len(v) == 0 {
			return "/monitor#h-alerts"
		}
		return "/monitor?" + v.Encode() + "#h-alerts"
	}
	acked := d.View == monitor.Acked
	d.Links.Open, d.Links.Acked, d.Links.Muted = link(false, d.Muted), link(true, d.Muted), link(acked, !d.Muted)
	var alerts struct {
		Total  int             `json:"total"`
		Alerts []monitor.Alert `json:"alerts"`
	}
	if err := s.call(r, "/api/v1/alerts", q, &alerts); err != nil {
		s.errorPage(w, r, err)
		return
	}
	d.Total = alerts.Total
	for _, a := range alerts.Alerts {
		d.Alerts = append(d.Alerts, viewAlert(a))
	}
	var mutes struct {
		Mutes []monitor.Mute `json:"mutes"`
	}
	if err := s.call(r, "/api/v1/mutes", nil, &mutes); err != nil {
		s.errorPage(w, r, err)
		return
	}
	d.Mutes = mutes.Mutes
	s.render(w, r, status, "monitor", s.page("Monitor", "monitor", d))
}

func viewAlert(a monitor.Alert) alertView {
	v := alertView{Alert: a, Where: a.Where()}
	if a.Port != 0 {
		v.MutePort = strconv.Itoa(int(a.Port))
	}
	ev := a.Evidence
	if ev.Before != nil || ev.After != nil {
		switch {
		case ev.Before == nil:
			v.Change = "nothing → " + stateWords(ev.After)
		case ev.After == nil:
			v.Change = stateWords(ev.Before) + " → gone"
		case a.Kind == monitor.ServiceChanged || a.Kind == monitor.VersionChanged || a.Kind == monitor.CertChanged:
			v.Change = stateWords(ev.Before) + " → " + stateWords(ev.After)
		default:
			v.Change = stateWords(ev.After)
		}
	}
	if ev.Search != "" {
		q := url.Values{"q": {ev.Search}}
		if a.Kind == monitor.SeenScanning {
			q.Set("t", "events")
		}
		v.Search = "/search?" + q.Encode()
	}
	switch {
	case a.Muted:
		v.Sent = "muted: not sent"
	case len(a.Deliveries) == 0:
		v.Sent = "not sent yet"
	default:
		var parts []string
		v.SentOK = true
		for _, d := range a.Deliveries {
			if d.OK {
				parts = append(parts, d.Name+" ok")
				continue
			}
			v.SentOK = false
			parts = append(parts, d.Name+" failed: "+d.Error)
		}
		v.Sent = strings.Join(parts, "; ")
	}
	return v
}

// stateWords names a service as a rescan saw it, certificate included.
func stateWords(st *monitor.ServiceState) string {
	s := st.What()
	if st.CertSubject != "" || st.CertSHA256 != "" {
		c := st.CertSubject
		if st.CertSHA256 != "" {
			c = strings.TrimSpace(c + " " + st.CertSHA256[:min(12, len(st.CertSHA256))])
		}
		s += ", certificate " + c
		if !st.CertNotAfter.IsZero() {
			s += " until " + st.CertNotAfter.Format("2006-01-02")
		}
	}
	return s
}

// formOf fills the form from a stored watchlist.
func formOf(l monitor.Watchlist) watchlistForm {
	f := watchlistForm{Name: l.Name, CIDRs: strings.Join(l.CIDRs, "\n"), Orgs: strings.Join(l.Orgs, "\n"),
		Subjects: strings.Join(l.Subjects, "\n"), Domains: strings.Join(l.Domains, "\n"), Ports: l.Ports,
		Emails: strings.Join(l.Emails, "\n"), Editing: true}
	var asns []string
	for _, a := range l.ASNs {
		asns = append(asns, fmt.Sprintf("AS%d", a))
	}
	f.ASNs = strings.Join(asns, "\n")
	if l.Ports == monitor.DefaultPorts {
		f.Ports = ""
	}
	if l.Every != 0 {
		f.Every = shortDuration(time.Duration(l.Every))
	}
	if l.Rate != 0 && l.Rate != monitor.DefaultRate {
		f.Rate = strconv.Itoa(l.Rate)
	}
	if len(l.Webhooks) > 0 {
		f.WebhookURL, f.SecretSet, f.MoreHooks = l.Webhooks[0].URL, l.Webhooks[0].Secret != "", len(l.Webhooks)-1
	}
	return f
}

// splitList reads a field of entries separated by commas or line breaks;
// lines only splits at line breaks (organisations and certificate
// subjects may hold commas).
func splitList(s string, lines bool) []string {
	sep := func(r rune) bool { return r == '\n' || r == '\r' || (!lines && r == ',') }
	var out []string
	for _, f := range strings.FieldsFunc(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// watchlist builds the API's watchlist from the form; errors name the field.
func (f *watchlistForm) watchlist() (monitor.Watchlist, error) {
	wl := monitor.Watchlist{Name: strings.TrimSpace(f.Name), CIDRs: splitList(f.CIDRs, false), Orgs: splitList(f.Orgs, true),
		Subjects: splitList(f.Subjects, true), Domains: splitList(f.Domains, false), Emails: splitList(f.Emails, false),
		Ports: strings.Join(splitList(f.Ports, false), ",")}
	for _, a := range splitList(f.ASNs, false) {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(a), "AS"), 10, 32)
		if err != nil {
			return wl, fmt.Errorf("ASN %q: want a number such as AS64500", a)
		}
		wl.ASNs = append(wl.ASNs, uint32(n))
	}
	if e := strings.TrimSpace(f.Every); e != "" {
		d, err := parseEvery(e)
		if err != nil {
			return wl, fmt.Errorf("every %q: want a duration such as 6h, 24h or 7d", e)
		}
		wl.Every = monitor.Duration(d)
	}
	if rt := strings.TrimSpace(f.Rate); rt != "" {
		n, err := strconv.Atoi(rt)
		if err != nil || n <= 0 {
			return wl, fmt.Errorf("rate %q: want a number of probes per second", rt)
		}
		wl.Rate = n
	}
	return wl, nil
}

func parseEvery(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 3650 {
			return 0, errors.New("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func errText(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Body.Error
	}
	return err.Error()
}

// back answers a POST with a redirect to the monitor page, with what
// went wrong or what was done.
func back(w http.ResponseWriter, r *http.Request, done string, err error) {
	q := url.Values{}
	if err != nil {
		q.Set("error", errText(err))
	} else if done != "" {
		q.Set("done", done)
	}
	target := "/monitor"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// postOK refuses cross-site POSTs and bounds the form.
func postOK(w http.ResponseWriter, r *http.Request) bool {
	if !sameSite(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	return true
}

func (s *Site) monitorLogin(w http.ResponseWriter, r *http.Request) {
	if !postOK(w, r) {
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	if key == "" {
		s.render(w, r, http.StatusBadRequest, "monitor-login", s.page("Monitor", "monitor", monitorData{Error: "enter an API key with the monitor scope"}))
		return
	}
	// check it before keeping it: the monitor scope is enough
	probe := r.Clone(r.Context())
	probe.Header.Set("Authorization", "Bearer "+key)
	var lists struct{}
	if err := s.call(probe, "/api/v1/monitors", nil, &lists); err != nil {
		status := http.StatusUnauthorized
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
			status = http.StatusForbidden
		}
		s.render(w, r, status, "monitor-login", s.page("Monitor", "monitor", monitorData{Error: errText(err)}))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: keyCookie, Value: key, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: 8 * 3600})
	http.Redirect(w, r, "/monitor", http.StatusSeeOther)
}

func (s *Site) monitorLogout(w http.ResponseWriter, r *http.Request) {
	if !postOK(w, r) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: keyCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/monitor", http.StatusSeeOther)
}

// monitorSave adds or replaces a watchlist. A refusal draws the page
// again with the form as typed, so nothing typed is lost.
func (s *Site) monitorSave(w http.ResponseWriter, r *http.Request) {
	if !postOK(w, r) {
		return
	}
	f := watchlistForm{Name: r.PostFormValue("name"), CIDRs: r.PostFormValue("cidrs"), ASNs: r.PostFormValue("asns"),
		Orgs: r.PostFormValue("orgs"), Subjects: r.PostFormValue("subjects"), Domains: r.PostFormValue("domains"),
		Ports: r.PostFormValue("ports"), Every: r.PostFormValue("every"), Rate: r.PostFormValue("rate"),
		WebhookURL: strings.TrimSpace(r.PostFormValue("webhook_url")), Emails: r.PostFormValue("emails")}
	secret := r.PostFormValue("webhook_secret")
	refuse := func(err error) {
		status := http.StatusBadRequest
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.Status
		}
		s.monitorPage(w, r, status, f, errText(err))
	}
	wl, err := f.watchlist()
	if err != nil {
		refuse(err)
		return
	}
	if f.WebhookURL != "" {
		h := monitor.Webhook{URL: f.WebhookURL, Secret: secret}
		if secret == "" {
			// an empty secret keeps the one stored for this URL, if any
			var old monitor.View
			if s.call(r, "/api/v1/monitors/"+url.PathEscape(wl.Name), nil, &old) == nil {
				for _, o := range old.Webhooks {
					if o.URL == h.URL && o.Secret != "" {
						h.Secret = o.Secret // "(set)": the API keeps the stored one
					}
				}
			}
		}
		wl.Webhooks = []monitor.Webhook{h}
	}
	var saved monitor.View
	if err := s.send(r, http.MethodPost, "/api/v1/monitors", nil, wl, &saved); err != nil {
		refuse(err)
		return
	}
	back(w, r, "Watchlist "+saved.Name+" saved.", nil)
}

// monitorWatchlist rescans or removes a watchlist.
func (s *Site) monitorWatchlist(w http.ResponseWriter, r *http.Request) {
	if !postOK(w, r) {
		return
	}
	name := r.PathValue("name")
	path := "/api/v1/monitors/" + url.PathEscape(name)
	switch r.PathValue("action") {
	case "scan":
		var st job.Status
		err := s.send(r, http.MethodPost, path+"/scan", nil, nil, &st)
		back(w, r, fmt.Sprintf("Rescan of %s queued: job %s (%d targets).", name, st.ID, len(st.Targets)), err)
	case "remove":
		err := s.send(r, http.MethodDelete, path, nil, nil, nil)
		back(w, r, "Watchlist "+name+" removed; its alerts stay.", err)
	default:
		http.NotFound(w, r)
	}
}

// monitorAlert acknowledges an alert, or mutes its host and port.
func (s *Site) monitorAlert(w http.ResponseWriter, r *http.Request) {
	if !postOK(w, r) {
		return
	}
	id := r.PathValue("id")
	switch r.PathValue("action") {
	case "ack":
		err := s.send(r, http.MethodPost, "/api/v1/alerts/"+url.PathEscape(id)+"/ack", nil, nil, nil)
		back(w, r, "Alert acknowledged.", err)
	case "mute":
		var a monitor.Alert
		if err := s.call(r, "/api/v1/alerts/"+url.PathEscape(id), nil, &a); err != nil {
			back(w, r, "", err)
			return
		}
		req := map[string]any{"watchlist": a.Watchlist, "ip": a.IP.String(), "port": a.Port,
			"reason": strings.TrimSpace(r.PostFormValue("reason"))}
		if d := r.PostFormValue("for"); d != "" && d != "ever" {
			req["for"] = d
		}
		if req["reason"] == "" {
			req["reason"] = "muted from the alert: " + a.Title
			if len(a.Title) > 400 {
				req["reason"] = "muted from an alert"
			}
		}
		err := s.send(r, http.MethodPost, "/api/v1/mutes", nil, req, nil)
		back(w, r, "Muted "+a.Where()+" for watchlist "+a.Watchlist+".", err)
	default:
		http.NotFound(w, r)
	}
}

// monitorMuteAdd mutes an address (and port) by hand.
func (s *Site) monitorMuteAdd(w http.ResponseWriter, r *http.Request) {
	if !postOK(w, r) {
		return
	}
	req := map[string]any{"ip": strings.TrimSpace(r.PostFormValue("ip")), "reason": strings.TrimSpace(r.PostFormValue("reason"))}
	if wl := strings.TrimSpace(r.PostFormValue("watchlist")); wl != "" {
		req["watchlist"] = wl
	}
	if p := strings.TrimSpace(r.PostFormValue("port")); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			back(w, r, "", fmt.Errorf("port %q: want 1-65535, or nothing for every port", p))
			return
		}
		req["port"] = n
	}
	if d := r.PostFormValue("for"); d != "" && d != "ever" {
		req["for"] = d
	}
	var m monitor.Mute
	err := s.send(r, http.MethodPost, "/api/v1/mutes", nil, req, &m)
	back(w, r, "Muted "+m.IP.String()+".", err)
}

func (s *Site) monitorUnmute(w http.ResponseWriter, r *http.Request) {
	if !postOK(w, r) {
		return
	}
	err := s.send(r, http.MethodDelete, "/api/v1/mutes/"+url.PathEscape(r.PathValue("id")), nil, nil, nil)
	back(w, r, "Mute removed.", err)
}
