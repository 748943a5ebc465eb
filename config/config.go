// Package config is the server's configuration: one documented TOML file
// (docs/vantage.toml), overridden by VANTAGE_* environment variables, which
// are overridden by command-line flags. Every key has a default, so the file
// and the variables are optional.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Server configures `vantage server` (and the server part of `vantage up`).
type Server struct {
	Data    string  `toml:"data" doc:"data directory: the embedded bus, the store and the geo databases live here"`
	Listen  string  `toml:"listen" doc:"address of the HTTP API (and later the web UI)"`
	Bus     Bus     `toml:"bus"`
	Store   Store   `toml:"store"`
	Geo     Geo     `toml:"geo"`
	API     API     `toml:"api"`
	OptOut  OptOut  `toml:"optout"`
	Vuln    Vuln    `toml:"vuln"`
	Monitor Monitor `toml:"monitor"`
}

// Bus says which NATS to use.
type Bus struct {
	URL      string   `toml:"url" doc:"external NATS server or cluster (nats://host:4222,...); empty runs one embedded"`
	Creds    string   `toml:"creds" doc:"NATS credentials file"`
	Token    string   `toml:"token" doc:"NATS token"`
	Listen   string   `toml:"listen" doc:"embedded bus: also accept NATS clients (scanners, sensors) on this address; empty = none"`
	Replicas int      `toml:"replicas" doc:"stream and bucket replicas (3 on a three-node cluster)"`
	MaxAge   Duration `toml:"max_age" doc:"how long the bus keeps messages"`
}

// Store says where records are kept and for how long.
type Store struct {
	Kind        string    `toml:"kind" doc:"duckdb (embedded, in the data directory) or clickhouse (set url)"`
	URL         string    `toml:"url" doc:"ClickHouse store: clickhouse://[user[:password]@]host:9000/database[?cluster=NAME] (native protocol; a cluster's shards behind Distributed tables); when set, the store is ClickHouse whatever kind says"`
	Threads     int       `toml:"threads" doc:"DuckDB worker threads; 0 = all cores"`
	MemoryLimit string    `toml:"memory_limit" doc:"DuckDB memory limit, e.g. 4GB; empty = DuckDB's default (80% of RAM)"`
	Retention   Retention `toml:"retention"`
}

// Retention is how long each kind of record is kept (0 = forever).
type Retention struct {
	Events   Duration `toml:"events" doc:"sensor events"`
	History  Duration `toml:"history" doc:"every observation of a service"`
	Services Duration `toml:"services" doc:"current services not seen again"`
}

// Geo locates the enrichment databases.
type Geo struct {
	Dir       string `toml:"dir" doc:"directory written by scripts/geodata.sh; empty = <data>/geo"`
	Country   string `toml:"country_mmdb" doc:"explicit path of the country mmdb (overrides dir)"`
	ASNv4     string `toml:"asn_v4_csv" doc:"explicit path of asn-ipv4-num.csv"`
	ASNv6     string `toml:"asn_v6_csv" doc:"explicit path of asn-ipv6.csv"`
	Overrides string `toml:"overrides" doc:"overrides file: CIDR country=.. asn=.. org=.. label=.. per line"`
}

// Vuln says where the vulnerability feeds are.
type Vuln struct {
	Dir string `toml:"dir" doc:"directory of NVD CVE JSON 2.0 feeds and the CISA KEV catalog (*.json, *.json.gz) to match services' CPEs against; empty = <data>/vulns"`
}

// Monitor tunes watchlists' rescans and alerts.
type Monitor struct {
	GoneAfter    int      `toml:"gone_after" doc:"rescans in a row a service must miss before it is reported gone"`
	CertWarn     Duration `toml:"cert_warn" doc:"alert on certificates that expire within this"`
	EOLFile      string   `toml:"eol_file" doc:"end-of-life dates of your own (JSON, the format of eol/data/eol.json) over the built-in ones"`
	SMTPAddr     string   `toml:"smtp_addr" doc:"SMTP server (host:port) for watchlists' e-mail alerts; empty = no e-mail"`
	SMTPFrom     string   `toml:"smtp_from" doc:"sender address of alert e-mail"`
	SMTPUser     string   `toml:"smtp_user" doc:"SMTP login (AUTH PLAIN, only over TLS unless the server is on loopback)"`
	SMTPPassword string   `toml:"smtp_password" doc:"SMTP password"`
	SMTPTLS      string   `toml:"smtp_tls" doc:"starttls (when offered; required with a login), tls (implicit, port 465) or none"`
}

// OptOut sets how opt-out requests are decided.
type OptOut struct {
	MaxPrefix4    int    `toml:"max_prefix_v4" doc:"an IPv4 opt-out wider than this prefix (a /15 is wider than /16) always needs an operator"`
	MaxPrefix6    int    `toml:"max_prefix_v6" doc:"the same for IPv6"`
	FetchReserved string `toml:"fetch_reserved" doc:"reserved ranges (comma-separated CIDRs, e.g. a lab) where token checks may fetch; empty = none"`
	Collected     string `toml:"collected" doc:"what happens to what scans already stored about an opted-out range: hide (from public lookups) or purge (delete it)"`
}

// API tunes the HTTP API.
type API struct {
	Anonymous    bool     `toml:"anonymous" doc:"allow reads without an API key (writes always need one)"`
	QueryTimeout Duration `toml:"query_timeout" doc:"longest time one query may run"`
	MaxRows      int      `toml:"max_rows" doc:"most rows one page may return"`
	RateLimit    float64  `toml:"rate_limit" doc:"requests per second per key (or per address when anonymous)"`
	Burst        int      `toml:"burst" doc:"requests allowed at once above the rate"`
	MaxBody      int64    `toml:"max_body" doc:"largest request body in bytes"`
}

// Default is the configuration when nothing is set.
func Default() Server {
	return Server{
		Data:   "./data",
		Listen: "127.0.0.1:8080",
		Bus:    Bus{Replicas: 1, MaxAge: Duration(7 * 24 * time.Hour)},
		Store: Store{Kind: "duckdb", Retention: Retention{
			Events: Duration(90 * 24 * time.Hour), History: Duration(365 * 24 * time.Hour),
		}},
		API: API{Anonymous: true, QueryTimeout: Duration(10 * time.Second), MaxRows: 1000,
			RateLimit: 50, Burst: 100, MaxBody: 16 << 20},
		OptOut:  OptOut{MaxPrefix4: 16, MaxPrefix6: 32, Collected: "hide"},
		Monitor: Monitor{GoneAfter: 2, CertWarn: Duration(30 * 24 * time.Hour), SMTPTLS: "starttls", SMTPFrom: "vantage@localhost"},
	}
}

// Load reads a configuration file over the defaults. Unknown keys are
// errors (a typo must not be silently ignored), naming the key.
func Load(r io.Reader, name string) (Server, error) {
	c := Default()
	md, err := toml.NewDecoder(r).Decode(&c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return c, fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return c, fmt.Errorf("%s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return c, fmt.Errorf("%s: unknown key %s (see docs/vantage.toml)", name, strings.Join(keys, ", "))
	}
	return c, c.Check()
}

// LoadFile reads a file; an empty name returns the defaults.
func LoadFile(name string) (Server, error) {
	if name == "" {
		return Default(), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return Default(), fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return Load(f, name)
}

// Check reports values that cannot work.
func (c *Server) Check() error {
	switch {
	case c.Data == "":
		return errors.New("config: data directory is empty")
	case c.Store.Kind != "duckdb" && c.Store.Kind != "clickhouse":
		return fmt.Errorf("config: store kind %q: only duckdb and clickhouse exist", c.Store.Kind)
	case c.Store.URL != "" && !strings.HasPrefix(c.Store.URL, "clickhouse://"):
		return fmt.Errorf("config: store.url must be clickhouse://host:9000/database")
	case c.Store.Kind == "clickhouse" && c.Store.URL == "":
		return fmt.Errorf("config: store kind clickhouse needs store.url clickhouse://host:9000/database")
	case c.API.MaxRows < 1 || c.API.MaxRows > 100000:
		return fmt.Errorf("config: api.max_rows %d: want 1-100000", c.API.MaxRows)
	case c.API.RateLimit < 0 || c.API.Burst < 0:
		return errors.New("config: api.rate_limit and api.burst must not be negative")
	case c.Bus.Replicas < 1 || c.Bus.Replicas > 5:
		return fmt.Errorf("config: bus.replicas %d: want 1-5", c.Bus.Replicas)
	case c.Monitor.GoneAfter < 1 || c.Monitor.GoneAfter > 100:
		return fmt.Errorf("config: monitor.gone_after %d: want 1-100", c.Monitor.GoneAfter)
	case c.Monitor.SMTPTLS != "starttls" && c.Monitor.SMTPTLS != "tls" && c.Monitor.SMTPTLS != "none":
		return fmt.Errorf("config: monitor.smtp_tls %q: want starttls, tls or none", c.Monitor.SMTPTLS)
	case c.OptOut.Collected != "hide" && c.OptOut.Collected != "purge":
		return fmt.Errorf("config: optout.collected %q: want hide or purge", c.OptOut.Collected)
	case c.OptOut.MaxPrefix4 < 8 || c.OptOut.MaxPrefix4 > 32 || c.OptOut.MaxPrefix6 < 16 || c.OptOut.MaxPrefix6 > 128:
		return fmt.Errorf("config: optout.max_prefix_v4 %d (want 8-32) or optout.max_prefix_v6 %d (want 16-128)", c.OptOut.MaxPrefix4, c.OptOut.MaxPrefix6)
	}
	return nil
}

// ApplyEnv sets every key that has an environment variable: the key's path
// in upper case, dots as underscores, after VANTAGE_ (bus.url is
// VANTAGE_BUS_URL, store.retention.events VANTAGE_STORE_RETENTION_EVENTS).
func (c *Server) ApplyEnv(lookup func(string) (string, bool)) error {
	var errs []error
	walk(reflect.ValueOf(c).Elem(), "", func(key string, v reflect.Value) {
		name := EnvName(key)
		s, ok := lookup(name)
		if !ok {
			return
		}
		if err := setString(v, s); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, s, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.Check()
}

// EnvName is the environment variable of a key.
func EnvName(key string) string {
	return "VANTAGE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every key with its documentation, for the sample file and
// `vantage help config`.
func Keys() []Key {
	var out []Key
	d := Default()
	walk(reflect.ValueOf(&d).Elem(), "", func(key string, v reflect.Value) {
		out = append(out, Key{Name: key, Env: EnvName(key), Default: fmt.Sprint(v.Interface())})
	})
	docs := map[string]string{}
	walkType(reflect.TypeOf(d), "", docs)
	for i := range out {
		out[i].Doc = docs[out[i].Name]
	}
	return out
}

// Key is one configuration key.
type Key struct{ Name, Env, Default, Doc string }

func walk(v reflect.Value, prefix string, fn func(key string, v reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := f.Tag.Get("toml")
		if prefix != "" {
			key = prefix + "." + key
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
			walk(fv, key, fn)
			continue
		}
		fn(key, fv)
	}
}

func walkType(t reflect.Type, prefix string, docs map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := f.Tag.Get("toml")
		if prefix != "" {
			key = prefix + "." + key
		}
		if f.Type.Kind() == reflect.Struct {
			walkType(f.Type, key, docs)
			continue
		}
		docs[key] = f.Tag.Get("doc")
	}
}

func setString(v reflect.Value, s string) error {
	if d, ok := v.Addr().Interface().(*Duration); ok {
		return d.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("want true or false")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return errors.New("want an integer")
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return errors.New("want a number")
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("cannot set a %s", v.Kind())
	}
	return nil
}

// Duration is a time.Duration written like "15m", "36h" or "90d".
type Duration time.Duration

// UnmarshalText parses a duration; "d" means 24 hours.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 || n > 100*365 {
			return fmt.Errorf("duration %q: want a number of days", s)
		}
		*d = Duration(n * float64(24*time.Hour))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want e.g. 15m, 36h or 90d", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText prints the duration, in days when it is whole days.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d Duration) String() string {
	v := time.Duration(d)
	if v != 0 && v%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", v/(24*time.Hour))
	}
	return v.String()
}

// Sample is the documented configuration file with every key at its
// default (docs/vantage.toml is this text).
func Sample() string {
	var b strings.Builder
	b.WriteString("# vantage server configuration. Every key is optional and shown here with\n")
	b.WriteString("# its default. Each can also be set with the environment variable named\n")
	b.WriteString("# after it, and the most used ones with flags of `vantage server`.\n")
	b.WriteString("# Precedence: flag > environment > this file > default.\n")
	section := ""
	for _, k := range Keys() {
		sec, name := "", k.Name
		if i := strings.LastIndex(k.Name, "."); i >= 0 {
			sec, name = k.Name[:i], k.Name[i+1:]
		}
		if sec != section {
			fmt.Fprintf(&b, "\n[%s]\n", sec)
			section = sec
		}
		val := k.Default
		if val != "true" && val != "false" && (val == "" || strings.Trim(val, "0123456789.") != "") {
			val = strconv.Quote(val)
		}
		fmt.Fprintf(&b, "# %s (%s)\n%s = %s\n", k.Doc, k.Env, name, val)
	}
	return b.String()
}
