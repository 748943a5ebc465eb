// Package optout takes requests to be left out of scans and decides them.
// A request names ranges (CIDRs, IPv4 and IPv6), a contact and a reason.
// It is approved only with proof that the requester controls every range:
// it came from an address inside each range, or a token it was given is
// published at a URL on an address inside the range (fetched once per
// attempt, within the scanner's exclusion rules), or an operator approved
// it. Ranges wider than a configured prefix always need an operator. No
// one can so hide someone else's range from monitoring.
//
// An approved request goes onto the exclusion list (package exclusion) as
// a new version, which every scanner applies before its next packet.
// Requests live in the bus's "optouts" bucket; every request, decision and
// list version is appended to the AUDIT stream, which cannot be edited.
package optout

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/exclusion"
)

// States of a request.
const (
	Pending  = "pending"  // waiting for a token or an operator
	Approved = "approved" // on the exclusion list
	Rejected = "rejected"
	Removed  = "removed" // was approved, taken off the list by an operator
)

// Methods of proof.
const (
	BySource   = "source"   // the request came from inside every range
	ByToken    = "token"    // a token published on an address in the range
	ByOperator = "operator" // an operator decided
)

// Limits of one request.
const (
	MaxCIDRs   = 16
	MaxContact = 256
	MaxReason  = 1024
	tokenFile  = "/.well-known/vantage-optout.txt"
	fetchLimit = 4096
)

// Request is one opt-out request.
type Request struct {
	ID      string         `json:"id"`
	CIDRs   []netip.Prefix `json:"cidrs"`
	Contact string         `json:"contact"`
	Reason  string         `json:"reason,omitempty"`
	From    netip.Addr     `json:"from"` // the address the request came from
	State   string         `json:"state"`
	Method  string         `json:"method,omitempty"` // how it was proven (approved) or is to be (pending)
	Needs   string         `json:"needs,omitempty"`  // what a pending request waits for, in words
	Created time.Time      `json:"created"`
	Decided time.Time      `json:"decided,omitzero"`
	By      string         `json:"by,omitempty"`      // who decided: "source", "token", or the operator's key
	Note    string         `json:"note,omitempty"`    // the decision's reason
	Version uint64         `json:"version,omitempty"` // the exclusion list version that carried the decision
	Token   string         `json:"token,omitempty"`   // to publish at TokenURL (shown to the requester only)
	Secret  string         `json:"-"`                 // lets the requester see and verify the request
	Fetches int            `json:"fetches,omitempty"` // token fetches made
	Proven  []netip.Prefix `json:"proven,omitempty"`  // ranges a token fetch proved so far
}

// stored is the bucket's form: the request with its secret and token.
type stored struct {
	Request
	SecretHash string `json:"secret"`
	TokenValue string `json:"token_value"`
}

// Config wires the service.
type Config struct {
	Requests jetstream.KeyValue // the "optouts" bucket
	List     jetstream.KeyValue // the "exclusions" bucket
	JS       jetstream.JetStream
	// MaxAutoBits: a range wider than this (fewer bits: /15 is wider than
	// /16) needs an operator. IPv6 ranges use MaxAutoBits6.
	MaxAutoBits, MaxAutoBits6 int
	// Allowed reports whether the token fetch may connect to an address
	// (the scanner's exclusion rules: reserved ranges, the list itself is
	// no bar since the range is the requester's own).
	Allowed func(netip.Addr) bool
	Client  *http.Client // for token fetches; nil: a client without redirects, 5 s timeout
	// Purge, when set (the purge policy), deletes what scans stored about
	// an approved request's ranges; nil hides it instead (the API does).
	Purge func(ctx context.Context, prefixes []netip.Prefix) (int64, error)
	Now   func() time.Time
}

// Service decides requests.
type Service struct{ cfg Config }

// New returns the service.
func New(cfg Config) *Service {
	if cfg.MaxAutoBits == 0 {
		cfg.MaxAutoBits = 16
	}
	if cfg.MaxAutoBits6 == 0 {
		cfg.MaxAutoBits6 = 32
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Allowed == nil {
		cfg.Allowed = func(netip.Addr) bool { return true }
	}
	return &Service{cfg: cfg}
}

// ErrNotFound is a request that does not exist (or a wrong secret).
var ErrNotFound = errors.New("no such opt-out request")

// Error is a request refused for what it says; its message is for the requester.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func refuse(format string, a ...any) error { return &Error{Msg: fmt.Sprintf(format, a...)} }

// Submission is what a requester sends.
type Submission struct {
	CIDRs   []string `json:"cidrs"`
	Contact string   `json:"contact"`
	Reason  string   `json:"reason,omitempty"`
}

// ParseCIDRs reads and checks the ranges of a request.
func ParseCIDRs(in []string) ([]netip.Prefix, error) {
	if len(in) == 0 {
		return nil, refuse("name at least one range (CIDR)")
	}
	if len(in) > MaxCIDRs {
		return nil, refuse("at most %d ranges per request", MaxCIDRs)
	}
	var out []netip.Prefix
	for _, s := range in {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, refuse("%q is not a CIDR or an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Zone() != "" {
			return nil, refuse("%q: no zones", s)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, refuse("%s mixes IPv4-mapped and other IPv6 addresses", p)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Bits() < 8 && p.Addr().Is4() || p.Bits() < 16 && p.Addr().Is6() {
			return nil, refuse("%s is wider than any one holder's network", p)
		}
		p = p.Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Submit records a request from the address from, and approves it at once
// when from lies inside every range and none is too wide. A request whose
// ranges are all excluded already is answered with that, without a new
// record; the same contact asking again for the same ranges gets its
// pending request back (with a fresh secret).
func (s *Service) Submit(ctx context.Context, sub Submission, from netip.Addr) (*Request, error) {
	cidrs, err := ParseCIDRs(sub.CIDRs)
	if err != nil {
		return nil, err
	}
	contact := strings.TrimSpace(sub.Contact)
	if contact == "" || len(contact) > MaxContact || strings.ContainsAny(contact, "\r\n") {
		return nil, refuse("give a contact (an e-mail address or URL, at most %d characters, one line)", MaxContact)
	}
	if len(sub.Reason) > MaxReason {
		return nil, refuse("the reason is longer than %d characters", MaxReason)
	}
	list, _, err := exclusion.Load(ctx, s.cfg.List)
	if err != nil {
		return nil, err
	}
	if covered(list, cidrs) {
		return &Request{CIDRs: cidrs, State: Approved, Version: list.Version, Note: "already excluded: every range is on the exclusion list"}, nil
	}
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.State == Pending && o.Contact == contact && slices.Equal(o.CIDRs, cidrs) {
			secret := newSecret()
			o.SecretHash = hashSecret(secret)
			if err := s.put(ctx, o); err != nil {
				return nil, err
			}
			r := o.public(true)
			r.Secret = secret
			return r, nil
		}
	}
	from = from.Unmap()
	st := &stored{Request: Request{ID: newID(), CIDRs: cidrs, Contact: contact, Reason: sub.Reason, From: from,
		State: Pending, Created: s.cfg.Now().UTC()}}
	secret := newSecret()
	st.SecretHash, st.TokenValue = hashSecret(secret), "vantage-optout-"+newSecret()
	wide := s.tooWide(cidrs)
	inside := true
	for _, p := range cidrs {
		inside = inside && p.Contains(from)
	}
	switch {
	case wide != "":
		st.Method, st.Needs = ByOperator, fmt.Sprintf("%s is wider than /%d (IPv4) or /%d (IPv6): an operator must approve it", wide, s.cfg.MaxAutoBits, s.cfg.MaxAutoBits6)
	case inside:
		st.Method = BySource
	default:
		st.Method, st.Needs = ByToken, fmt.Sprintf("publish the token at http://<an address in each range>%s, then ask to verify; or wait for an operator", tokenFile)
	}
	if err := s.put(ctx, st); err != nil {
		return nil, err
	}
	s.audit(ctx, "request", from.String(), st, "")
	if st.Method == BySource {
		if st, err = s.approve(ctx, st.ID, BySource, BySource, "the request came from "+from.String()+", inside every range"); err != nil {
			return nil, err
		}
	}
	r := st.public(true)
	r.Secret = secret
	return r, nil
}

func (s *Service) tooWide(cidrs []netip.Prefix) string {
	for _, p := range cidrs {
		if p.Addr().Is4() && p.Bits() < s.cfg.MaxAutoBits || p.Addr().Is6() && p.Bits() < s.cfg.MaxAutoBits6 {
			return p.String()
		}
	}
	return ""
}

func covered(l *exclusion.List, cidrs []netip.Prefix) bool {
	for _, p := range cidrs {
		in := false
		for _, e := range l.Entries {
			if e.Prefix.Bits() <= p.Bits() && e.Prefix.Contains(p.Addr()) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

// Status is what the requester may see: the request, given its secret.
func (s *Service) Status(ctx context.Context, id, secret string) (*Request, error) {
	st, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(st.SecretHash)) != 1 {
		return nil, ErrNotFound
	}
	return st.public(true), nil
}

// Verify fetches the token once from url, which must be an http URL on an
// address (no names) inside each of the request's ranges... at least one
// address per range: a URL proves the range it is in, so a request of
// several ranges is verified one URL per range, each call adding one.
func (s *Service) Verify(ctx context.Context, id, secret, rawURL string) (*Request, error) {
	st, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(st.SecretHash)) != 1 {
		return nil, ErrNotFound
	}
	if st.State != Pending {
		return st.public(true), nil
	}
	if st.Method == ByOperator {
		return nil, refuse("%s", st.Needs)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Path != tokenFile {
		return nil, refuse("the URL must be http://<address>%s", tokenFile)
	}
	addr, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]"))
	if err != nil || addr.Zone() != "" {
		return nil, refuse("the URL's host must be an address inside the range, not a name")
	}
	addr = addr.Unmap()
	var proves []netip.Prefix
	for _, p := range st.CIDRs {
		if p.Contains(addr) {
			proves = append(proves, p)
		}
	}
	if len(proves) == 0 {
		return nil, refuse("%s is not inside any range of the request", addr)
	}
	if !s.cfg.Allowed(addr) {
		return nil, refuse("%s may not be contacted (reserved or excluded space)", addr)
	}
	st.Fetches++
	body, ferr := s.fetch(ctx, u.String())
	ok := ferr == nil && bytes.Contains(body, []byte(st.TokenValue))
	note := fmt.Sprintf("token fetched from %s", u)
	if !ok {
		if ferr != nil {
			note = fmt.Sprintf("token fetch from %s failed: %v", u, ferr)
		} else {
			note = fmt.Sprintf("%s does not hold the token", u)
		}
		s.audit(ctx, "verify-failed", addr.String(), st, note)
		if err := s.put(ctx, st); err != nil {
			return nil, err
		}
		return nil, refuse("%s", note)
	}
	// record which ranges are proven; approve once all are
	for _, p := range proves {
		if !slices.Contains(st.Proven, p) {
			st.Proven = append(st.Proven, p)
		}
	}
	s.audit(ctx, "verified", addr.String(), st, note)
	var missing []string
	for _, p := range st.CIDRs {
		if !slices.Contains(st.Proven, p) {
			missing = append(missing, p.String())
		}
	}
	if len(missing) > 0 {
		st.Needs = "the token is proven for part of the request; verify " + strings.Join(missing, ", ") + " too"
		if err := s.put(ctx, st); err != nil {
			return nil, err
		}
		return st.public(true), nil
	}
	if err := s.put(ctx, st); err != nil {
		return nil, err
	}
	st, err = s.approve(ctx, st.ID, ByToken, ByToken, note)
	if err != nil {
		return nil, err
	}
	return st.public(true), nil
}

func (s *Service) fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "Vantage opt-out verification (one request per attempt)")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, errors.New("timed out")
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, fetchLimit))
}

// Add is an operator's request: recorded and, with approve, approved in
// the same step.
func (s *Service) Add(ctx context.Context, sub Submission, by string, approve bool) (*Request, error) {
	cidrs, err := ParseCIDRs(sub.CIDRs)
	if err != nil {
		return nil, err
	}
	contact := strings.TrimSpace(sub.Contact)
	if contact == "" {
		contact = "operator"
	}
	st := &stored{Request: Request{ID: newID(), CIDRs: cidrs, Contact: contact, Reason: sub.Reason, State: Pending,
		Method: ByOperator, Needs: "an operator's decision", Created: s.cfg.Now().UTC()}}
	st.SecretHash, st.TokenValue = hashSecret(newSecret()), "vantage-optout-"+newSecret()
	if err := s.put(ctx, st); err != nil {
		return nil, err
	}
	s.audit(ctx, "request", by, st, "added by an operator")
	if !approve {
		return st.public(false), nil
	}
	st, err = s.approve(ctx, st.ID, ByOperator, by, sub.Reason)
	if err != nil {
		return nil, err
	}
	return st.public(false), nil
}

// Approve is an operator's approval of a pending request.
func (s *Service) Approve(ctx context.Context, id, by, note string) (*Request, error) {
	st, err := s.approve(ctx, id, ByOperator, by, note)
	if err != nil {
		return nil, err
	}
	return st.public(false), nil
}

func (s *Service) approve(ctx context.Context, id, method, by, note string) (*stored, error) {
	st, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.State != Pending {
		return nil, refuse("request %s is %s, not pending", id, st.State)
	}
	l, err := exclusion.Update(ctx, s.cfg.List, s.cfg.Now, func(l *exclusion.List) error {
		l.Add(st.CIDRs, "opt-out "+id+" ("+st.Contact+")", id, s.cfg.Now())
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.State, st.Method, st.Needs, st.By, st.Version = Approved, method, "", by, l.Version
	st.Decided = l.Updated
	if note != "" {
		st.Note = note
	}
	if err := s.put(ctx, st); err != nil {
		return nil, err
	}
	s.audit(ctx, "approve", by, st, fmt.Sprintf("exclusion list version %d: %d ranges", l.Version, len(l.Entries)))
	if s.cfg.Purge != nil {
		// the approval stands whatever happens here; the log says what did
		n, err := s.cfg.Purge(ctx, st.CIDRs)
		detail := fmt.Sprintf("deleted %d stored service records", n)
		if err != nil {
			detail += fmt.Sprintf(" and stopped: %v", err)
		}
		s.audit(ctx, "purge", by, st, detail)
	}
	return st, nil
}

// Reject is an operator's refusal of a pending request.
func (s *Service) Reject(ctx context.Context, id, by, note string) (*Request, error) {
	st, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.State != Pending {
		return nil, refuse("request %s is %s, not pending", id, st.State)
	}
	st.State, st.Needs, st.By, st.Note, st.Decided = Rejected, "", by, note, s.cfg.Now().UTC()
	if err := s.put(ctx, st); err != nil {
		return nil, err
	}
	s.audit(ctx, "reject", by, st, note)
	return st.public(false), nil
}

// Remove takes an approved request off the exclusion list.
func (s *Service) Remove(ctx context.Context, id, by, note string) (*Request, error) {
	st, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.State != Approved {
		return nil, refuse("request %s is %s: only approved requests are on the list", id, st.State)
	}
	l, err := exclusion.Update(ctx, s.cfg.List, s.cfg.Now, func(l *exclusion.List) error {
		l.Remove(id, nil)
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.State, st.By, st.Note, st.Decided, st.Version = Removed, by, note, l.Updated, l.Version
	if err := s.put(ctx, st); err != nil {
		return nil, err
	}
	s.audit(ctx, "remove", by, st, fmt.Sprintf("exclusion list version %d: %d ranges", l.Version, len(l.Entries)))
	return st.public(false), nil
}

// List returns every request, newest first, as an operator sees them.
func (s *Service) List(ctx context.Context) ([]*Request, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Request, 0, len(all))
	for _, st := range all {
		out = append(out, st.public(false))
	}
	slices.SortFunc(out, func(a, b *Request) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// Get is one request as an operator sees it.
func (s *Service) Get(ctx context.Context, id string) (*Request, error) {
	st, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	return st.public(false), nil
}

// public is the request without its secrets; the token is shown to the
// requester (who must publish it) but not in an operator's list.
func (st *stored) public(requester bool) *Request {
	r := st.Request
	r.CIDRs = slices.Clone(st.CIDRs)
	if requester && r.State == Pending && r.Method == ByToken {
		r.Token = st.TokenValue
	}
	return &r
}

func (s *Service) get(ctx context.Context, id string) (*stored, error) {
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, ErrNotFound
	}
	e, err := s.cfg.Requests.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("opt-out request %s: %w", id, err)
	}
	var st stored
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, fmt.Errorf("opt-out request %s: %w", id, err)
	}
	return &st, nil
}

func (s *Service) put(ctx context.Context, st *stored) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Requests.Put(ctx, st.ID, b); err != nil {
		return fmt.Errorf("store opt-out request %s: %w", st.ID, err)
	}
	return nil
}

func (s *Service) all(ctx context.Context) ([]*stored, error) {
	keys, err := s.cfg.Requests.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list opt-out requests: %w", err)
	}
	var out []*stored
	for k := range keys.Keys() {
		st, err := s.get(ctx, k)
		if err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newSecret() string { return newID() + newID()[:16] }

func hashSecret(s string) string {
	h := sha256.Sum256([]byte("vantage-optout:" + s))
	return hex.EncodeToString(h[:])
}

// Bucket is the bus bucket of the requests.
const Bucket = "optouts"

// Open is New over a bus: its requests bucket, the exclusion list's
// bucket and its audit stream.
func Open(ctx context.Context, b *bus.Bus, cfg Config) (*Service, error) {
	var err error
	if cfg.Requests, err = b.KV(ctx, Bucket); err != nil {
		return nil, fmt.Errorf("opt-out requests: %w", err)
	}
	if cfg.List, err = b.KV(ctx, exclusion.Bucket); err != nil {
		return nil, fmt.Errorf("exclusion list: %w", err)
	}
	cfg.JS = b.JS
	return New(cfg), nil
}

// FollowList keeps t current with the exclusion list until ctx ends.
func (s *Service) FollowList(ctx context.Context, t *exclusion.Tracker, log *slog.Logger) {
	t.Run(ctx, s.cfg.List, log)
}
