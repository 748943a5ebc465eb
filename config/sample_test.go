package config

import (
	"strings"
	"testing"
	"time"
)

// The production sample in deploy/config/server.toml loads (no unknown
// key, every value valid) and says what it says.
func TestDeploySample(t *testing.T) {
	c, err := LoadFile("../deploy/config/server.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Data != "/var/lib/vantage" || c.Bus.Replicas != 3 || c.Bus.Creds == "" || c.API.Anonymous || c.Store.Kind != "duckdb" {
		t.Errorf("sample: %+v", c)
	}
	if time.Duration(c.Store.Retention.Events) != 90*24*time.Hour || c.Monitor.SMTPAddr == "" {
		t.Errorf("sample retention or monitor: %+v", c)
	}
	if urls := strings.Split(c.Bus.URL, ","); len(urls) != 3 {
		t.Errorf("bus.url %q: want three NATS nodes", c.Bus.URL)
	}
}
