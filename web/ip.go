package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/tag"
)

type ipData struct {
	IP       string
	Host     *store.Host
	Sensor   *api.SensorView
	Geo      record.Geo
	Country  string
	Services []serviceView
	Tags     []tagWord // of the sensor profile, with their intention
	Ports    []portCount
	Answer   string // is it scanning everyone or only you?
	Exposure *api.ExposureView
	// ExposureError says why the score is missing on a host with services
	ExposureError string
}

type serviceView struct {
	store.Service
	Banner string // printable, bounded
	Data   []kv
}

type kv struct{ Key, Value string }

type portCount struct {
	Port  string
	Count int
}

func (s *Site) ip(w http.ResponseWriter, r *http.Request) {
	arg := r.PathValue("ip")
	d := ipData{IP: arg}
	var host store.Host
	hostErr := s.call(r, "/api/v1/host/"+url.PathEscape(arg), nil, &host)
	var view api.SensorView
	sensorErr := s.call(r, "/api/v1/sensors/ip/"+url.PathEscape(arg), url.Values{"events": {"50"}}, &view)
	for _, err := range []error{hostErr, sensorErr} {
		var ae *apiError
		if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
			s.errorPage(w, r, err)
			return
		}
	}
	status := http.StatusOK
	if hostErr == nil {
		d.Host, d.Geo = &host, host.Geo
		for _, sv := range host.Services {
			v := serviceView{Service: sv, Banner: printable(sv.Banner, 2048)}
			for k, val := range sv.Data {
				v.Data = append(v.Data, kv{k, val})
			}
			sort.Slice(v.Data, func(i, j int) bool { return v.Data[i].Key < v.Data[j].Key })
			d.Services = append(d.Services, v)
		}
		if len(host.Services) > 0 {
			var ex api.ExposureView
			if err := s.call(r, "/api/v1/exposure/"+url.PathEscape(arg), nil, &ex); err != nil {
				if r.Context().Err() != nil {
					return
				}
				d.ExposureError = errText(err)
			} else {
				d.Exposure = &ex
			}
		}
	}
	if sensorErr == nil {
		d.Sensor = &view
		if d.Geo == (record.Geo{}) {
			d.Geo = view.Geo
		}
		d.Answer = view.Summary
		e := tag.Default()
		for _, t := range view.Tags {
			tw := tagWord{Tag: t, Name: t, Intention: "unknown"}
			if m, ok := e.Meta(t); ok {
				tw.Name, tw.Intention = m.Name, m.Intention
			}
			for _, te := range view.TagEvidence {
				if te.Tag == t {
					tw.Count = te.Events
				}
			}
			d.Tags = append(d.Tags, tw)
		}
		counts := map[string]int{}
		for _, ev := range view.Recent {
			counts[eventPort(ev)]++
		}
		for p, n := range counts {
			d.Ports = append(d.Ports, portCount{p, n})
		}
		sort.Slice(d.Ports, func(i, j int) bool { return d.Ports[i].Count > d.Ports[j].Count })
	} else if hostErr == nil {
		d.Answer = fmt.Sprintf("Not seen by the sensors: %s has not been caught scanning the Internet. If it hit your network, it may be targeting you.", arg)
	}
	if hostErr != nil && sensorErr != nil {
		var ae *apiError
		if errors.As(hostErr, &ae) && strings.Contains(ae.Body.Error, "not an IP address") {
			s.errorPage(w, r, hostErr)
			return
		}
		status = http.StatusNotFound
		d.Answer = fmt.Sprintf("Nothing is known about %s: no scan found a service on it and no sensor saw it.", arg)
		if errors.As(hostErr, &ae) && strings.Contains(ae.Body.Error, "opted out") {
			d.Answer = fmt.Sprintf("%s is in a range whose holder opted out: nothing is shown about it.", arg)
		}
	}
	d.Country = s.world.name(d.Geo.Country)
	p := s.page(arg, "", d)
	p.Query = ""
	s.render(w, r, status, "ip", p)
}

func eventPort(ev record.Event) string {
	switch ev.Transport {
	case "icmp":
		return "icmp"
	default:
		return fmt.Sprintf("%d/%s", ev.DstPort, ev.Transport)
	}
}

// printable shows bytes as text: valid UTF-8 printable runes as they are,
// anything else as \xNN, cut at limit bytes.
func printable(b []byte, limit int) string {
	cut := false
	if len(b) > limit {
		b, cut = b[:limit], true
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case r == '\n' || r == '\t':
			sb.WriteRune(r)
		case r == '\r':
			sb.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, r)
		default:
			sb.WriteRune(r)
		}
		b = b[n:]
	}
	if cut {
		sb.WriteString("…")
	}
	return sb.String()
}
