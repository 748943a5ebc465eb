package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadAndOverrides(t *testing.T) {
	c, err := Load(strings.NewReader(`
data = "/var/lib/vantage"
listen = "0.0.0.0:8080"
[bus]
url = "nats://a:4222,nats://b:4222"
replicas = 3
[store.retention]
events = "30d"
[api]
anonymous = false
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Data != "/var/lib/vantage" || c.Bus.Replicas != 3 || time.Duration(c.Store.Retention.Events) != 30*24*time.Hour || c.API.Anonymous {
		t.Fatalf("%+v", c)
	}
	if c.API.MaxRows != 1000 { // untouched keys keep their defaults
		t.Fatalf("max_rows %d", c.API.MaxRows)
	}
	env := map[string]string{"VANTAGE_LISTEN": "127.0.0.1:9999", "VANTAGE_STORE_RETENTION_EVENTS": "12h", "VANTAGE_API_ANONYMOUS": "true"}
	if err := c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" || time.Duration(c.Store.Retention.Events) != 12*time.Hour || !c.API.Anonymous {
		t.Fatalf("env not applied: %+v", c)
	}
}

func TestErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"data = \"x\"\nlistn = \"y\"", "unknown key listn"},
		{"[bus]\nreplicas = 9", "bus.replicas 9"},
		{"[store.retention]\nevents = \"soon\"", "duration"},
		{"data = ", "t.toml:1"},
		{"[store]\nkind = \"mysql\"", "only duckdb"},
	} {
		_, err := Load(strings.NewReader(tt.in), "t.toml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.want)
		}
	}
	c := Default()
	err := c.ApplyEnv(func(k string) (string, bool) {
		if k == "VANTAGE_API_MAX_ROWS" {
			return "lots", true
		}
		return "", false
	})
	if err == nil || !strings.Contains(err.Error(), "VANTAGE_API_MAX_ROWS") {
		t.Fatalf("error %v", err)
	}
}

var update = flag.Bool("update", false, "rewrite docs/vantage.toml")

// The sample file documents every key, and parses to the defaults.
func TestSampleFile(t *testing.T) {
	path := filepath.Join("..", "docs", "vantage.toml")
	if *update {
		os.WriteFile(path, []byte(Sample()), 0o644)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != Sample() {
		t.Fatal("docs/vantage.toml is out of date: go test ./config -run TestSampleFile -update")
	}
	c, err := Load(strings.NewReader(string(b)), "docs/vantage.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c != Default() {
		t.Fatalf("the sample differs from the defaults: %+v", c)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(b), k.Name[strings.LastIndex(k.Name, ".")+1:]+" =") {
			t.Errorf("docs/vantage.toml does not document %s", k.Name)
		}
		if k.Doc == "" {
			t.Errorf("key %s has no doc", k.Name)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("data = \"x\"\n[bus]\nreplicas = 3\n")
	f.Add("[store.retention]\nevents = \"1.5d\"\n")
	f.Add("[[x]]\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Load(strings.NewReader(s), "fuzz")
		if err == nil {
			if c.Check() != nil {
				t.Fatal("Load accepted a configuration that Check refuses")
			}
		}
	})
}
