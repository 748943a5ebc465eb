package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vantagehq/vantage/grab"
	"github.com/vantagehq/vantage/record"
)

// TestGrabOutputJSON: a grab's JSON line is what json.Marshal makes of the
// record with its banner as text and the error beside it, member for member.
func TestGrabOutputJSON(t *testing.T) {
	type out struct {
		record.Service
		Banner string `json:"banner,omitempty"`
		Error  string `json:"error,omitempty"`
		Kind   string `json:"error_kind,omitempty"`
	}
	ip := netip.MustParseAddr("198.18.0.7")
	at := time.Date(2026, 11, 28, 1, 0, 0, 5, time.UTC)
	for _, c := range []struct {
		name string
		svc  record.Service
		err  error
	}{
		{"http", record.Service{ID: record.HashID("a"), Time: at, IP: ip, Port: 80, Transport: "tcp", State: "open", Protocol: "http",
			Product: "nginx", Banner: []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n<html>"),
			HTTP: &record.HTTP{Status: 200, Server: "nginx", Headers: []record.Header{{Name: "Server", Value: "nginx"}}},
			Data: map[string]string{"rule": "http.nginx"}}, nil},
		{"binary banner", record.Service{IP: ip, Port: 3389, Banner: []byte("\x03\x00\x00\x13\x0e\xd0<&>")}, nil},
		{"timeout", record.Service{IP: ip, Port: 81, State: "open"}, fmt.Errorf("read: %w", syscall.ETIMEDOUT)},
		{"refused", record.Service{IP: ip, Port: 82, State: "closed"}, fmt.Errorf("dial: %w", syscall.ECONNREFUSED)},
		{"not mine", record.Service{IP: ip, Port: 83, State: "open", Banner: []byte("\xff\xfb\x01")}, grab.NotMine("greeting %q", "\xff\xfb\x01")},
		{"empty error text", record.Service{IP: ip}, errors.New("")},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := out{Service: c.svc, Banner: bannerText(c.svc.Banner)}
			if c.err != nil {
				o.Error, o.Kind = c.err.Error(), grab.ErrorKind(c.err)
			}
			want, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, '\n')
			if got := appendGrabOutput(nil, &c.svc, c.err); !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}
