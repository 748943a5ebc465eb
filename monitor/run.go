package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/store"
)

// Run schedules rescans, evaluates finished ones and watches the sensors
// for the watchlists' addresses, until ctx is done.
func (m *Monitor) Run(ctx context.Context) {
	evals := make(chan job.Status, 64)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		m.redeliver(ctx)
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			err := m.cfg.Jobs.Watch(ctx, func(st job.Status) {
				if strings.HasPrefix(st.Origin, "monitor:") && (st.State == job.Done || st.State == job.Failed) {
					select {
					case evals <- st:
					case <-ctx.Done():
					}
				}
			})
			if err != nil && ctx.Err() == nil {
				m.log.Warn("following scan jobs", "err", err)
				sleep(ctx, 5*time.Second)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case st := <-evals:
				m.evaluate(ctx, st)
			}
		}
	}()
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

// tick queues the rescans that are due, catches finished jobs whose
// evaluation was missed (a restart) and checks the sensors.
func (m *Monitor) tick(ctx context.Context) {
	lists, err := m.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("watchlists", "err", err)
		}
		return
	}
	now := m.cfg.Now().UTC()
	for _, w := range lists {
		rs, _, err := m.runState(ctx, w.Name)
		if err != nil {
			continue
		}
		if rs.PendingJob != "" {
			st, err := m.cfg.Jobs.Get(ctx, rs.PendingJob)
			switch {
			case err == nil && (st.State == job.Done || st.State == job.Failed):
				m.evaluate(ctx, st)
			case err != nil && now.Sub(rs.LastScan) > time.Hour:
				// the job never reached the bucket: schedule anew
				m.updateRun(ctx, w.Name, func(r *RunState) bool { r.PendingJob = ""; return true })
			}
		} else if every := time.Duration(w.Every); now.Sub(rs.LastScan) >= every {
			// one ID per period: servers sharing the bus queue it once
			id := fmt.Sprintf("%s-%d", w.Name, now.Unix()/int64(every/time.Second))
			if _, err := m.submit(ctx, w, id, false); err != nil && ctx.Err() == nil {
				m.log.Warn("scheduled rescan", "watchlist", w.Name, "err", err)
				m.updateRun(ctx, w.Name, func(r *RunState) bool { r.LastScan, r.LastError = now, err.Error(); return true })
			}
		}
		m.checkSensors(ctx, w)
	}
}

// evaluate compares a finished rescan with the state before and raises
// the alerts. Only one process evaluates a job: the one that moves the
// watchlist's pending job to its last job.
func (m *Monitor) evaluate(ctx context.Context, st job.Status) {
	m.evalMu.Lock()
	defer m.evalMu.Unlock()
	name := strings.TrimPrefix(st.Origin, "monitor:")
	w, err := m.Get(ctx, name)
	if err != nil {
		return // deleted since
	}
	rs, _, err := m.runState(ctx, name)
	if err != nil || rs.PendingJob != st.ID {
		return // evaluated already, or replaced by a newer scan
	}
	log := m.log.With("watchlist", name, "job", st.ID)
	if st.State == job.Failed {
		log.Warn("rescan failed", "err", st.Error)
		m.updateRun(ctx, name, func(r *RunState) bool {
			if r.PendingJob != st.ID {
				return false
			}
			r.PendingJob, r.LastError = "", "rescan "+st.ID+" failed: "+st.Error
			return true
		})
		return
	}
	t0 := time.Now()
	cur, err := m.results(ctx, st)
	if err != nil {
		log.Error("rescan results", "err", err)
		return
	}
	prev, err := m.hosts(ctx, name)
	if err != nil {
		log.Error("rescan state", "err", err)
		return
	}
	// a host found before that this job did not find may have been seen
	// by another scan since the job started (it then holds this host's
	// latest observation); IPv6 hosts are not rescanned: they stay as
	// they are
	for a, h := range prev {
		if _, ok := cur[a]; ok {
			continue
		}
		if !a.Is4() {
			cur[a] = h
			continue
		}
		cur[a] = &HostState{IP: a}
		host, err := m.cfg.Store.Host(ctx, a)
		if err != nil {
			continue
		}
		for i := range host.Services {
			s := &host.Services[i]
			if s.LastSeen.Before(st.Started) || s.State != "open" {
				continue
			}
			cur[a].Services = append(cur[a].Services, stateOf(&s.Service, s.LastSeen))
		}
	}
	changes, next := Diff(prev, cur, m.cfg.GoneAfter)

	// claim the evaluation before raising anything
	baseline := rs.Baseline.IsZero()
	ok, err := m.updateRun(ctx, name, func(r *RunState) bool {
		if r.PendingJob != st.ID {
			return false
		}
		now := m.cfg.Now().UTC()
		r.PendingJob, r.LastJob, r.LastEval, r.LastError = "", st.ID, now, ""
		if r.Baseline.IsZero() {
			r.Baseline = now
		}
		r.Hosts, r.Services = len(next), 0
		for _, h := range next {
			r.Services += len(h.Services)
		}
		return true
	})
	if err != nil || !ok {
		return
	}
	if err := m.saveHosts(ctx, name, prev, next); err != nil {
		log.Error("saving host state", "err", err)
	}

	var alerts []*Alert
	if !baseline {
		for _, c := range changes {
			alerts = append(alerts, m.changeAlert(w, st.ID, c))
		}
	}
	for _, h := range sortedHosts(next) {
		for i := range h.Services {
			if s := &h.Services[i]; s.Missed == 0 {
				alerts = append(alerts, m.conditions(w, h.IP, s)...)
			}
		}
	}
	raised := m.raise(ctx, w, alerts)
	m.updateRun(ctx, name, func(r *RunState) bool { r.Alerts = raised; return true })
	log.Info("rescan evaluated", "baseline", baseline, "hosts", len(next), "changes", len(changes),
		"alerts", len(alerts), "new_alerts", raised, "took", time.Since(t0).Round(time.Millisecond))
}

// results waits until the store holds what the job published and reads
// it, by address.
func (m *Monitor) results(ctx context.Context, st job.Status) (map[netip.Addr]*HostState, error) {
	q := fmt.Sprintf("scan:%q", st.ID)
	deadline := time.Now().Add(m.cfg.IngestWait)
	for {
		m.cfg.Store.Sync(ctx)
		res, err := m.cfg.Store.SearchServices(ctx, store.Search{Query: q, Now: m.cfg.Now(), Limit: 1})
		if err != nil {
			return nil, err
		}
		if res.Total >= int64(st.Published) {
			break
		}
		if time.Now().After(deadline) {
			m.log.Warn("rescan: not every published record reached the store in time; evaluating what did",
				"job", st.ID, "published", st.Published, "stored", res.Total)
			break
		}
		if sleep(ctx, time.Second); ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	cur := map[netip.Addr]*HostState{}
	cursor := ""
	for {
		res, err := m.cfg.Store.SearchServices(ctx, store.Search{Query: q, Now: m.cfg.Now(), Limit: 1000, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for i := range res.Services {
			s := &res.Services[i]
			if s.State != "open" {
				continue
			}
			h := cur[s.IP]
			if h == nil {
				h = &HostState{IP: s.IP}
				cur[s.IP] = h
			}
			h.Services = append(h.Services, stateOf(&s.Service, s.LastSeen))
		}
		if res.Next == "" {
			return cur, nil
		}
		cursor = res.Next
	}
}

// saveHosts writes the hosts whose state changed and forgets those gone.
func (m *Monitor) saveHosts(ctx context.Context, name string, prev, next map[netip.Addr]*HostState) error {
	for a, h := range next {
		data, _ := json.Marshal(h)
		if p := prev[a]; p != nil {
			old, _ := json.Marshal(p)
			if string(old) == string(data) {
				continue
			}
		}
		if _, err := m.state.Put(ctx, "host."+name+"."+ipKey(a), data); err != nil {
			return err
		}
	}
	for a := range prev {
		if next[a] == nil {
			m.state.Purge(ctx, "host."+name+"."+ipKey(a))
		}
	}
	return nil
}

func sortedHosts(hs map[netip.Addr]*HostState) []*HostState {
	out := make([]*HostState, 0, len(hs))
	for _, h := range hs {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b *HostState) int { return a.IP.Compare(b.IP) })
	return out
}

// changeAlert turns a change into its alert. A transition is raised once:
// its key carries the job that saw it.
func (m *Monitor) changeAlert(w Watchlist, jobID string, c Change) *Alert {
	s := c.After
	if s == nil {
		s = c.Before
	}
	var a *Alert
	switch c.Kind {
	case NewService:
		a = newAlert(w.Name, c.Kind, "high", c.IP, s.Port, s.Transport, jobID)
		a.Title = fmt.Sprintf("New service exposed on %s: %s", netip.AddrPortFrom(c.IP, s.Port), s.What())
	case ServiceGone:
		a = newAlert(w.Name, c.Kind, "info", c.IP, s.Port, s.Transport, jobID)
		a.Title = fmt.Sprintf("Service gone from %s: %s no longer answers (%d rescans)", netip.AddrPortFrom(c.IP, s.Port), s.What(), m.cfg.GoneAfter)
	case VersionChanged:
		a = newAlert(w.Name, c.Kind, "low", c.IP, s.Port, s.Transport, jobID)
		a.Title = fmt.Sprintf("Version changed on %s: %s %s -> %s", netip.AddrPortFrom(c.IP, s.Port), s.Product, c.Before.Version, c.After.Version)
	case ServiceChanged:
		a = newAlert(w.Name, c.Kind, "medium", c.IP, s.Port, s.Transport, jobID)
		a.Title = fmt.Sprintf("Service changed on %s: %s -> %s", netip.AddrPortFrom(c.IP, s.Port), c.Before.What(), c.After.What())
	case CertChanged:
		a = newAlert(w.Name, c.Kind, "low", c.IP, s.Port, s.Transport, c.After.CertSHA256)
		a.Title = fmt.Sprintf("Certificate changed on %s: now %s", netip.AddrPortFrom(c.IP, s.Port), orDash(c.After.CertSubject))
	}
	a.Evidence = Evidence{Job: jobID, Before: c.Before, After: c.After,
		Search: fmt.Sprintf("ip:%s port:%d", c.IP, s.Port)}
	return a
}

// conditions are the standing problems of a service: known CVEs, an
// end-of-life version, a certificate expiring. They are raised again at
// each rescan and deduplicated into one alert per service and finding.
func (m *Monitor) conditions(w Watchlist, ip netip.Addr, s *ServiceState) []*Alert {
	var out []*Alert
	where := netip.AddrPortFrom(ip, s.Port)
	search := fmt.Sprintf("ip:%s port:%d", ip, s.Port)

	cves := map[string]CVE{}
	for _, id := range s.Vulns {
		cves[id] = CVE{ID: id}
	}
	if m.cfg.Vulns != nil {
		for _, c := range s.CPE {
			for _, v := range m.cfg.Vulns(c) {
				cves[v.ID] = CVE{ID: v.ID, Score: v.Score, KEV: v.KEV}
			}
		}
	}
	if len(cves) > 0 {
		list := make([]CVE, 0, len(cves))
		ids := make([]string, 0, len(cves))
		kev, top := 0, 0.0
		for _, c := range cves {
			list = append(list, c)
			ids = append(ids, c.ID)
			if c.KEV {
				kev++
			}
			top = max(top, c.Score)
		}
		slices.Sort(ids)
		slices.SortFunc(list, func(a, b CVE) int {
			if a.KEV != b.KEV {
				if a.KEV {
					return -1
				}
				return 1
			}
			if a.Score != b.Score {
				if a.Score > b.Score {
					return -1
				}
				return 1
			}
			return strings.Compare(a.ID, b.ID)
		})
		sev := "medium"
		switch {
		case kev > 0 || top >= 9:
			sev = "critical"
		case top >= 7:
			sev = "high"
		case top > 0 && top < 4:
			sev = "low"
		}
		// the CVE list is part of the key: a feed update that adds CVEs
		// is news
		a := newAlert(w.Name, Vulnerable, sev, ip, s.Port, s.Transport, s.Product, s.Version, strings.Join(ids, ","))
		a.Title = fmt.Sprintf("Vulnerable version on %s: %s %s has %d known CVEs", where, s.Product, s.Version, len(list))
		if kev > 0 {
			a.Title += fmt.Sprintf(", %d known exploited", kev)
		}
		a.Evidence = Evidence{After: s, CVEs: list, Search: search}
		out = append(out, a)
	}

	if m.cfg.EOL != nil {
		for _, c := range s.CPE {
			st, ok := m.cfg.EOL.Check(c, m.cfg.Now())
			if !ok || !st.Ended {
				continue
			}
			a := newAlert(w.Name, EndOfLife, "medium", ip, s.Port, s.Transport, st.Product, st.Cycle)
			a.Title = fmt.Sprintf("End-of-life version on %s: %s %s (the %s cycle ended %s)", where, orDash(s.Product), s.Version,
				st.Cycle, st.EOL.Format("2006-01-02"))
			a.Evidence = Evidence{After: s, EOL: &EOLInfo{Product: st.Product, Cycle: st.Cycle, EOL: st.EOL, Source: st.Source}, Search: search}
			out = append(out, a)
			break
		}
	}

	if !s.CertNotAfter.IsZero() {
		now := m.cfg.Now()
		left := s.CertNotAfter.Sub(now)
		if left < m.cfg.CertWarn {
			a := newAlert(w.Name, CertExpiring, "medium", ip, s.Port, s.Transport, s.CertSHA256)
			if left <= 0 {
				a.Severity = "high"
				a.Title = fmt.Sprintf("Certificate expired on %s: %s, since %s", where, orDash(s.CertSubject), s.CertNotAfter.Format("2006-01-02"))
			} else {
				a.Title = fmt.Sprintf("Certificate expiring on %s: %s, on %s (%d days)", where, orDash(s.CertSubject),
					s.CertNotAfter.Format("2006-01-02"), int(left.Hours()/24))
			}
			a.Evidence = Evidence{After: s, Search: search}
			out = append(out, a)
		}
	}
	return out
}

// checkSensors raises an alert for each of the watchlist's addresses that
// the sensors saw since the last check: one of yours scanning others is
// most likely compromised (or a scanner nobody told you about).
func (m *Monitor) checkSensors(ctx context.Context, w Watchlist) {
	prefixes := w.Prefixes()
	if len(prefixes)+len(w.ASNs) == 0 {
		return
	}
	rs, _, err := m.runState(ctx, w.Name)
	if err != nil {
		return
	}
	now := m.cfg.Now().UTC()
	since := rs.SensorMark
	if since.IsZero() {
		since = w.Created
	}
	var or []string
	for _, p := range prefixes {
		or = append(or, "src.ip:"+p.String())
	}
	// the ASNs by the events' enrichment, however large the AS
	for _, asn := range w.ASNs {
		or = append(or, fmt.Sprintf("src.asn:%d", asn))
	}
	q := fmt.Sprintf("(%s) after:%s", strings.Join(or, " OR "), since.Format(time.RFC3339))
	res, err := m.cfg.Store.SearchEvents(ctx, store.Search{Query: q, Now: now, Limit: 1000})
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("sensor check", "watchlist", w.Name, "err", err)
		}
		return
	}
	srcs := map[netip.Addr]bool{}
	for _, e := range res.Events {
		srcs[e.Src] = true
	}
	var alerts []*Alert
	for a := range srcs {
		p, err := m.cfg.Store.Profile(ctx, a, 0)
		if err != nil {
			continue
		}
		al := newAlert(w.Name, SeenScanning, "high", a, 0, "")
		if p.Classification == "malicious" {
			al.Severity = "critical"
		}
		al.Title = fmt.Sprintf("Your address %s was seen by %d sensors scanning others (%d events, ports %s): compromised?",
			a, p.Sensors, p.Events, portList(p.Ports))
		al.Evidence = Evidence{Events: p.Events, Sensors: p.Sensors, Ports: p.Ports, Tags: p.Tags, Since: p.FirstSeen,
			Search: "src.ip:" + a.String()}
		alerts = append(alerts, al)
	}
	slices.SortFunc(alerts, func(x, y *Alert) int { return x.IP.Compare(y.IP) })
	m.raise(ctx, w, alerts)
	// events are stored a little after they happen: look back a minute
	// each time (deduplication keeps the alerts single)
	m.updateRun(ctx, w.Name, func(r *RunState) bool { r.SensorMark = now.Add(-time.Minute); return true })
}

func portList(ps []uint16) string {
	var s []string
	for i, p := range ps {
		if i == 8 {
			s = append(s, "...")
			break
		}
		s = append(s, fmt.Sprint(p))
	}
	return orDash(strings.Join(s, ","))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
