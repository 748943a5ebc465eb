package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The admin pages act with an admin API key kept in a cookie that is
// HttpOnly (no script reads it) and SameSite=Strict (no other site's form
// or link sends it); POSTs must also come from this site (Origin).

const keyCookie = "vantage_key"

type adminData struct {
	Error    string
	Requests []optoutView
	Pending  int
	List     struct {
		Version uint64    `json:"version"`
		Updated time.Time `json:"updated"`
		Entries []struct {
			Prefix string `json:"prefix"`
			Reason string `json:"reason"`
		} `json:"entries"`
	}
	Audit []auditEvent
}

// auditEvent is a line of the audit log as the API gives it.
type auditEvent struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	By      string    `json:"by"`
	Request string    `json:"request"`
	CIDRs   []string  `json:"cidrs"`
	Version uint64    `json:"version"`
	Detail  string    `json:"detail"`
}

func (s *Site) admin(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(keyCookie); err != nil && r.Header.Get("Authorization") == "" {
		s.render(w, r, http.StatusOK, "admin-login", s.page("Admin", "admin", adminData{}))
		return
	}
	var d adminData
	var reqs struct {
		Requests []optoutView `json:"requests"`
	}
	err := s.call(r, "/api/v1/optouts", nil, &reqs)
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		d.Error = ae.Body.Error
		s.render(w, r, ae.Status, "admin-login", s.page("Admin", "admin", d))
		return
	}
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	d.Requests = reqs.Requests
	for _, q := range d.Requests {
		if q.State == "pending" {
			d.Pending++
		}
	}
	if err := s.call(r, "/api/v1/exclusions", nil, &d.List); err != nil {
		s.errorPage(w, r, err)
		return
	}
	var audit struct {
		Events []auditEvent `json:"events"`
	}
	if err := s.call(r, "/api/v1/audit", url.Values{"limit": {"50"}}, &audit); err != nil {
		s.errorPage(w, r, err)
		return
	}
	for i := len(audit.Events) - 1; i >= 0; i-- { // newest first
		d.Audit = append(d.Audit, audit.Events[i])
	}
	d.Error = r.URL.Query().Get("error")
	s.render(w, r, http.StatusOK, "admin", s.page("Admin", "admin", d))
}

// sameSite refuses a POST whose Origin is another site.
func sameSite(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return r.Header.Get("Sec-Fetch-Site") != "cross-site"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (s *Site) adminLogin(w http.ResponseWriter, r *http.Request) {
	if !sameSite(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	key := strings.TrimSpace(r.PostFormValue("key"))
	if key == "" {
		s.render(w, r, http.StatusBadRequest, "admin-login", s.page("Admin", "admin", adminData{Error: "enter an admin API key"}))
		return
	}
	// check it before keeping it
	probe := r.Clone(r.Context())
	probe.Header.Set("Authorization", "Bearer "+key)
	var reqs struct{}
	if err := s.call(probe, "/api/v1/optouts", nil, &reqs); err != nil {
		var ae *apiError
		msg := err.Error()
		if errors.As(err, &ae) {
			msg = ae.Body.Error
		}
		s.render(w, r, http.StatusUnauthorized, "admin-login", s.page("Admin", "admin", adminData{Error: msg}))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: keyCookie, Value: key, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: 8 * 3600})
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

func (s *Site) adminLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: keyCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

// adminDecide approves, rejects or removes a request.
func (s *Site) adminDecide(w http.ResponseWriter, r *http.Request) {
	if !sameSite(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	id, action := r.PathValue("id"), r.PathValue("action")
	note := r.PostFormValue("note")
	var err error
	var out map[string]any
	switch action {
	case "approve", "reject":
		err = s.send(r, http.MethodPost, "/api/v1/optouts/"+url.PathEscape(id)+"/"+action, nil, map[string]string{"note": note}, &out)
	case "remove":
		err = s.send(r, http.MethodDelete, "/api/v1/optouts/"+url.PathEscape(id), url.Values{"note": {note}}, nil, &out)
	default:
		http.NotFound(w, r)
		return
	}
	target := "/admin"
	if err != nil {
		var ae *apiError
		msg := err.Error()
		if errors.As(err, &ae) {
			msg = ae.Body.Error
		}
		target += "?" + url.Values{"error": {msg}}.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
