package monitor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/notify"
)

// raise stores alerts, folding each into the alert with the same key if
// there is one (counted, not sent again), and sends the new ones that no
// mute covers. It returns how many were new.
func (m *Monitor) raise(ctx context.Context, w Watchlist, alerts []*Alert) int {
	if len(alerts) == 0 {
		return 0
	}
	mutes, err := m.Mutes(ctx)
	if err != nil {
		m.log.Warn("mutes", "err", err)
	}
	now := m.cfg.Now().UTC()
	var fresh []*Alert
	for _, a := range alerts {
		a.FirstSeen, a.LastSeen = now, now
		for _, mu := range mutes {
			if mu.covers(a, now) {
				a.Muted = true
			}
		}
		data, _ := json.Marshal(a)
		_, err := m.alerts.Create(ctx, a.ID, data)
		if err == nil {
			if !a.Muted {
				fresh = append(fresh, a)
			}
			continue
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			m.log.Error("store alert", "id", a.ID, "err", err)
			continue
		}
		// seen before: count it and refresh its evidence
		m.updateAlert(ctx, a.ID, func(old *Alert) bool {
			old.LastSeen, old.Count, old.Evidence = now, old.Count+1, a.Evidence
			return true
		})
	}
	if len(fresh) > 0 {
		m.notify(ctx, w, fresh)
	}
	return len(fresh)
}

// notify sends new alerts: each alone to the webhooks and the log, and
// one e-mail listing them all, and records the outcome on each alert.
func (m *Monitor) notify(ctx context.Context, w Watchlist, alerts []*Alert) {
	slices.SortStableFunc(alerts, func(a, b *Alert) int {
		return cmp.Or(cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)), a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port))
	})
	hooks := webhooks(w)
	logger := &notify.Log{Log: m.log}
	results := map[string][]notify.Result{}
	for _, a := range alerts {
		results[a.ID] = notify.SendAll(ctx, append([]notify.Notifier{logger}, hooks...), m.alertMessage(a))
	}
	if len(w.Emails) > 0 {
		if m.cfg.SMTP == nil {
			m.log.Warn("watchlist names e-mail addresses but the server has no SMTP settings (monitor.smtp_addr)", "watchlist", w.Name)
		} else {
			mail := *m.cfg.SMTP
			mail.To = w.Emails
			var b strings.Builder
			fmt.Fprintf(&b, "Vantage raised %d new alerts for the watchlist %s.\n\n", len(alerts), w.Name)
			for _, a := range alerts {
				b.WriteString(m.alertText(a))
				b.WriteString("\n")
			}
			subject := fmt.Sprintf("[vantage] %d new alerts for %s", len(alerts), w.Name)
			if len(alerts) == 1 {
				subject = fmt.Sprintf("[vantage %s] %s", alerts[0].Severity, alerts[0].Title)
			}
			msg := notify.Message{ID: alertID(strings.Join(ids(alerts), ",")), Event: "alerts", Subject: subject,
				Text: b.String(), Body: alerts, Time: m.cfg.Now()}
			r := notify.SendAll(ctx, []notify.Notifier{&mail}, msg)
			for _, a := range alerts {
				results[a.ID] = append(results[a.ID], r...)
			}
		}
	}
	for _, a := range alerts {
		rs := results[a.ID]
		m.updateAlert(ctx, a.ID, func(old *Alert) bool { old.Deliveries = rs; return true })
	}
}

// webhooks are a watchlist's webhook notifiers.
func webhooks(w Watchlist) []notify.Notifier {
	var out []notify.Notifier
	for _, h := range w.Webhooks {
		out = append(out, &notify.Webhook{URL: h.URL, Secret: h.Secret})
	}
	return out
}

// alertMessage is one alert as the webhooks and the log get it; its
// delivery ID is the alert's.
func (m *Monitor) alertMessage(a *Alert) notify.Message {
	return notify.Message{ID: a.ID, Event: "alert", Subject: fmt.Sprintf("[vantage %s] %s", a.Severity, a.Title),
		Text: m.alertText(a), Body: a, Time: a.FirstSeen}
}

// RedeliverWithin is how old an alert's failed webhook delivery may be
// for the next start to send it again.
const RedeliverWithin = 24 * time.Hour

// redeliver sends again, once at start, the webhook deliveries that had
// failed after their retries in the last RedeliverWithin: a receiver that
// was down, or a server stopped in the middle of a delivery, gets them
// now. The delivery ID is the alert's, as the first time, so a receiver
// that did get one can tell. Failed e-mails are not sent again (one
// message listed a whole rescan's alerts).
func (m *Monitor) redeliver(ctx context.Context) {
	as, err := m.Alerts(ctx, Filter{})
	if err != nil {
		m.log.Warn("failed deliveries: list alerts", "err", err)
		return
	}
	for i := range as {
		a := &as[i]
		if a.Muted || m.cfg.Now().Sub(a.LastSeen) > RedeliverWithin {
			continue
		}
		failed := map[string]int{} // notifier name: its place in Deliveries
		for j, d := range a.Deliveries {
			if !d.OK && strings.HasPrefix(d.Name, "webhook ") {
				failed[d.Name] = j
			}
		}
		if len(failed) == 0 {
			continue
		}
		w, err := m.Get(ctx, a.Watchlist)
		if err != nil {
			continue // the watchlist is gone, and its hooks with it
		}
		hooks := slices.DeleteFunc(webhooks(w), func(n notify.Notifier) bool {
			_, ok := failed[n.Name()]
			return !ok
		})
		if len(hooks) == 0 {
			continue
		}
		rs := notify.SendAll(ctx, hooks, m.alertMessage(a))
		m.log.Info("sent failed deliveries again", "alert", a.ID, "webhooks", len(hooks))
		m.updateAlert(ctx, a.ID, func(old *Alert) bool {
			for _, r := range rs {
				if j, ok := failed[r.Name]; ok && j < len(old.Deliveries) && old.Deliveries[j].Name == r.Name {
					old.Deliveries[j] = r
				}
			}
			return true
		})
	}
}

func ids(alerts []*Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.ID)
	}
	return out
}

// alertText is an alert for people: title, evidence, where to look.
func (m *Monitor) alertText(a *Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s\n", strings.ToUpper(a.Severity), a.Title)
	fmt.Fprintf(&b, "  watchlist %s, %s, alert %s\n", a.Watchlist, a.Kind, a.ID)
	e := a.Evidence
	if e.Before != nil {
		fmt.Fprintf(&b, "  before: %s, last seen %s\n", e.Before.What(), e.Before.LastSeen.Format(time.RFC3339))
	}
	if e.After != nil {
		fmt.Fprintf(&b, "  now:    %s, seen %s\n", e.After.What(), e.After.LastSeen.Format(time.RFC3339))
	}
	for i, c := range e.CVEs {
		if i == 10 {
			fmt.Fprintf(&b, "  ... and %d more CVEs\n", len(e.CVEs)-10)
			break
		}
		fmt.Fprintf(&b, "  %s CVSS %.1f", c.ID, c.Score)
		if c.KEV {
			b.WriteString(" KNOWN EXPLOITED")
		}
		b.WriteString("\n")
	}
	if e.EOL != nil {
		fmt.Fprintf(&b, "  %s %s: end of life %s (%s)\n", e.EOL.Product, e.EOL.Cycle, e.EOL.EOL.Format("2006-01-02"), e.EOL.Source)
	}
	if len(e.Tags) > 0 {
		fmt.Fprintf(&b, "  sensors' tags: %s\n", strings.Join(e.Tags, ", "))
	}
	if e.Search != "" {
		if m.cfg.PublicURL != "" {
			fmt.Fprintf(&b, "  %s/search?q=%s\n", m.cfg.PublicURL, strings.ReplaceAll(e.Search, " ", "+"))
		} else {
			fmt.Fprintf(&b, "  vantage search '%s'\n", e.Search)
		}
	}
	return b.String()
}

// updateAlert changes a stored alert with compare-and-set.
func (m *Monitor) updateAlert(ctx context.Context, id string, f func(*Alert) bool) (Alert, error) {
	for range 10 {
		e, err := m.alerts.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Alert{}, fmt.Errorf("alert %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return Alert{}, fmt.Errorf("alert %s: %w", id, err)
		}
		var a Alert
		if err := json.Unmarshal(e.Value(), &a); err != nil {
			return Alert{}, fmt.Errorf("alert %s: %w", id, err)
		}
		if !f(&a) {
			return a, nil
		}
		data, _ := json.Marshal(&a)
		if _, err := m.alerts.Update(ctx, id, data, e.Revision()); err == nil {
			return a, nil
		}
	}
	return Alert{}, fmt.Errorf("alert %s: too many concurrent updates", id)
}

// Filter selects alerts; empty fields select everything.
type Filter struct {
	Watchlist, State, Kind string
	IP                     netip.Addr
	Muted                  bool // include muted alerts
}

// Alerts are the stored alerts that pass the filter, most urgent and
// newest first.
func (m *Monitor) Alerts(ctx context.Context, f Filter) ([]Alert, error) {
	vals, err := values(ctx, m.alerts, ">")
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	var out []Alert
	for _, v := range vals {
		var a Alert
		if json.Unmarshal(v, &a) != nil {
			continue
		}
		if (f.Watchlist != "" && a.Watchlist != f.Watchlist) || (f.State != "" && a.State != f.State) ||
			(f.Kind != "" && a.Kind != f.Kind) || (f.IP.IsValid() && a.IP != f.IP) || (a.Muted && !f.Muted) {
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(stateRank(a.State), stateRank(b.State)), cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)),
			b.LastSeen.Compare(a.LastSeen), a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func stateRank(s string) int {
	if s == Open {
		return 0
	}
	return 1
}

// Alert is one alert.
func (m *Monitor) Alert(ctx context.Context, id string) (Alert, error) {
	return m.updateAlert(ctx, id, func(*Alert) bool { return false })
}

// Ack acknowledges an alert: it stays, marked as seen, and is not sent
// again.
func (m *Monitor) Ack(ctx context.Context, id, by string) (Alert, error) {
	return m.updateAlert(ctx, id, func(a *Alert) bool {
		if a.State == Acked {
			return false
		}
		a.State, a.AckedBy, a.AckedAt = Acked, by, m.cfg.Now().UTC()
		return true
	})
}

// Mute silences alerts for a host (and port) from now on.
func (m *Monitor) Mute(ctx context.Context, mu Mute) (Mute, error) {
	if !mu.IP.IsValid() {
		return Mute{}, &InputError{"a mute needs an address"}
	}
	if mu.Watchlist != "" {
		if _, err := m.Get(ctx, mu.Watchlist); err != nil {
			return Mute{}, err
		}
	}
	if len(mu.Reason) > 500 {
		return Mute{}, &InputError{"reason: at most 500 characters"}
	}
	mu.IP = mu.IP.Unmap()
	mu.ID = muteID(mu.Watchlist, mu.IP, mu.Port)
	mu.Created = m.cfg.Now().UTC()
	data, _ := json.Marshal(mu)
	if _, err := m.state.Put(ctx, "mute."+mu.ID, data); err != nil {
		return Mute{}, fmt.Errorf("save mute: %w", err)
	}
	return mu, nil
}

// Mutes are the mutes in force.
func (m *Monitor) Mutes(ctx context.Context) ([]Mute, error) {
	vals, err := values(ctx, m.state, "mute.>")
	if err != nil {
		return nil, fmt.Errorf("mutes: %w", err)
	}
	now := m.cfg.Now()
	var out []Mute
	for k, v := range vals {
		var mu Mute
		if json.Unmarshal(v, &mu) != nil {
			continue
		}
		if !mu.Until.IsZero() && !now.Before(mu.Until) {
			m.state.Purge(ctx, k) // expired
			continue
		}
		out = append(out, mu)
	}
	slices.SortFunc(out, func(a, b Mute) int { return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port)) })
	return out, nil
}

// Unmute removes a mute.
func (m *Monitor) Unmute(ctx context.Context, id string) error {
	if _, err := m.state.Get(ctx, "mute."+id); err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return fmt.Errorf("mute %s: %w", id, ErrNotFound)
		}
		return err
	}
	return m.state.Purge(ctx, "mute."+id)
}
