package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// optoutView is a request as its requester sees it (the API's answer).
type optoutView struct {
	ID        string    `json:"id"`
	CIDRs     []string  `json:"cidrs"`
	Contact   string    `json:"contact"`
	State     string    `json:"state"`
	Method    string    `json:"method"`
	Needs     string    `json:"needs"`
	Note      string    `json:"note"`
	Version   uint64    `json:"version"`
	Token     string    `json:"token"`
	Secret    string    `json:"secret"`
	StatusURL string    `json:"status_url"`
	Next      string    `json:"next"`
	Created   time.Time `json:"created"`
	Decided   time.Time `json:"decided"`
}

type optoutData struct {
	You     string // the visitor's address
	CIDRs   string // the form's values, kept after an error
	Contact string
	Reason  string
	Error   string
	Request *optoutView
	Secret  string
	Link    string // the status page, with the secret
}

func visitor(r *http.Request) string {
	you := r.RemoteAddr
	if i := strings.LastIndexByte(you, ':'); i > 0 {
		you = strings.Trim(you[:i], "[]")
	}
	return you
}

func (s *Site) optout(w http.ResponseWriter, r *http.Request) {
	you := visitor(r)
	s.render(w, r, http.StatusOK, "optout", s.page("Opt out", "optout", optoutData{You: you, CIDRs: you}))
}

// optoutSubmit takes the form: one range per line or comma.
func (s *Site) optoutSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, &apiError{Status: http.StatusBadRequest, Body: errBody("the form: " + err.Error())})
		return
	}
	d := optoutData{You: visitor(r), CIDRs: r.PostFormValue("cidrs"), Contact: r.PostFormValue("contact"), Reason: r.PostFormValue("reason")}
	cidrs := strings.FieldsFunc(d.CIDRs, func(c rune) bool { return c == ',' || c == '\n' || c == '\r' || c == ' ' || c == '\t' })
	var v optoutView
	err := s.send(r, http.MethodPost, "/api/v1/optout", nil, map[string]any{"cidrs": cidrs, "contact": d.Contact, "reason": d.Reason}, &v)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status < 500:
		d.Error = ae.Body.Error
		s.render(w, r, ae.Status, "optout", s.page("Opt out", "optout", d))
		return
	case err != nil:
		s.errorPage(w, r, err)
		return
	}
	d.Request, d.Secret = &v, v.Secret
	if v.ID != "" {
		d.Link = "/optout/" + v.ID + "?" + url.Values{"secret": {v.Secret}}.Encode()
	}
	s.render(w, r, http.StatusCreated, "optout-status", s.page("Your opt-out request", "optout", d))
}

func (s *Site) optoutStatus(w http.ResponseWriter, r *http.Request) {
	secret := r.URL.Query().Get("secret")
	var v optoutView
	if err := s.call(r, "/api/v1/optout/"+url.PathEscape(r.PathValue("id")), url.Values{"secret": {secret}}, &v); err != nil {
		s.errorPage(w, r, err)
		return
	}
	d := optoutData{You: visitor(r), Request: &v, Secret: secret, Link: r.URL.RequestURI()}
	s.render(w, r, http.StatusOK, "optout-status", s.page("Your opt-out request", "optout", d))
}

func (s *Site) optoutVerify(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, &apiError{Status: http.StatusBadRequest, Body: errBody("the form: " + err.Error())})
		return
	}
	id, secret := r.PathValue("id"), r.PostFormValue("secret")
	var v optoutView
	err := s.send(r, http.MethodPost, "/api/v1/optout/"+url.PathEscape(id)+"/verify", nil, map[string]string{"secret": secret, "url": r.PostFormValue("url")}, &v)
	d := optoutData{You: visitor(r), Secret: secret, Link: "/optout/" + id + "?" + url.Values{"secret": {secret}}.Encode()}
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
		d.Error = ae.Body.Error
		if err := s.call(r, "/api/v1/optout/"+url.PathEscape(id), url.Values{"secret": {secret}}, &v); err != nil {
			s.errorPage(w, r, err)
			return
		}
	case err != nil:
		s.errorPage(w, r, err)
		return
	}
	d.Request = &v
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadRequest
	}
	s.render(w, r, status, "optout-status", s.page("Your opt-out request", "optout", d))
}
