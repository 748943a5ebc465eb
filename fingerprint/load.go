package fingerprint

import (
	"bytes"
	"embed"
	"encoding/gob"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

//go:embed rules/*.toml
var embedded embed.FS

// builtinSnapshot is the built-in rules as parsed from rules/*.toml, in
// gob: decoding it is a twentieth of the cost of parsing the TOML, which
// was a third of a grab's start-up. TestBuiltinSnapshot fails when it no
// longer matches the TOML, and `go test ./fingerprint -run
// TestBuiltinSnapshot -update` writes it again.
//
//go:embed builtin.gob
var builtinSnapshot []byte

// defaultDB compiles each built-in rule on its first use (they are
// validated by this package's tests): a grabber that sees one protocol
// compiles only that protocol's rules, and starts faster.
var defaultDB = sync.OnceValues(func() (*DB, error) {
	var rules []Rule
	if err := gob.NewDecoder(bytes.NewReader(builtinSnapshot)).Decode(&rules); err != nil {
		return nil, fmt.Errorf("builtin.gob: %w", err)
	}
	lazy := make([]*compiledRule, len(rules))
	for i, r := range rules {
		lazy[i] = lazyRule(r)
	}
	return build(lazy)
})

// Default returns the built-in rules (fingerprint/rules/*.toml). They are
// validated by the package's tests, so a failure here is a programming
// error and panics.
func Default() *DB {
	db, err := defaultDB()
	if err != nil {
		panic("fingerprint: built-in rules: " + err.Error())
	}
	return db
}

// Identify runs the built-in rules; see DB.Identify.
func Identify(protocol string, fields map[string]string) (Match, bool) {
	return Default().Identify(protocol, fields)
}

// ruleFile is the TOML layout of a rules file.
type ruleFile struct {
	// File-wide defaults for the rules below.
	Protocol string      `toml:"protocol"`
	Field    string      `toml:"field"`
	Rules    []ruleEntry `toml:"rule"`
}

type ruleEntry struct {
	ID        string            `toml:"id"`
	Protocol  string            `toml:"protocol"`
	Field     string            `toml:"field"`
	Pattern   string            `toml:"pattern"`
	Bytes     bool              `toml:"bytes"`
	Product   string            `toml:"product"`
	Vendor    string            `toml:"vendor"`
	Version   string            `toml:"version"`
	Info      string            `toml:"info"`
	OS        string            `toml:"os"`
	Device    string            `toml:"device"`
	CPE       stringList        `toml:"cpe"`
	Extra     map[string]string `toml:"extra"`
	Prefilter []string          `toml:"prefilter"`
}

// stringList accepts a string or an array of strings.
type stringList []string

func (l *stringList) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*l = stringList{v}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("want a string or an array of strings, got an array holding %T", e)
			}
			*l = append(*l, s)
		}
	default:
		return fmt.Errorf("want a string or an array of strings, got %T", v)
	}
	return nil
}

// ParseRules reads one rules file without compiling the rules; name is
// used for Rule.Source ("name:line") and in errors.
func ParseRules(name string, data []byte) ([]Rule, error) {
	rules, _, err := parseRules(name, data)
	return rules, err
}

// parseRules is ParseRules, also returning where each rule and key is.
func parseRules(name string, data []byte) ([]Rule, fileLines, error) {
	var f ruleFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fileLines{}, fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
		}
		return nil, fileLines{}, fmt.Errorf("%s: %w", name, err)
	}
	lines := ruleLines(data)
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		var errs []error
		for _, k := range undecoded {
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q", name, lines.keyLine(k), k.String()))
		}
		return nil, fileLines{}, errors.Join(errs...)
	}
	rules := make([]Rule, len(f.Rules))
	for i, e := range f.Rules {
		r := Rule{
			ID: e.ID, Protocol: e.Protocol, Field: e.Field, Pattern: e.Pattern, Bytes: e.Bytes,
			Product: e.Product, Vendor: e.Vendor, Version: e.Version, Info: e.Info, OS: e.OS,
			Device: e.Device, CPE: e.CPE, Extra: e.Extra, Prefilter: e.Prefilter,
			Source: fmt.Sprintf("%s:%d", name, lines.ruleLine(i)),
		}
		if lines.ruleLine(i) == 0 {
			r.Source = fmt.Sprintf("%s: rule %d", name, i+1)
		}
		if r.Protocol == "" {
			r.Protocol = f.Protocol
		}
		if r.Field == "" {
			r.Field = f.Field
		}
		if len(r.Prefilter) == 0 {
			r.Prefilter = nil
		}
		rules[i] = r
	}
	return rules, lines, nil
}

// compileFile parses and compiles one file, reporting every error with the
// line of the offending key.
func compileFile(name string, data []byte) ([]*compiledRule, error) {
	return compileFileLazy(name, data, false)
}

// compileFileLazy is compileFile; with lazy, the rules are parsed but each
// is compiled on its first use (see lazyRule).
func compileFileLazy(name string, data []byte, lazy bool) ([]*compiledRule, error) {
	rules, lines, err := parseRules(name, data)
	if err != nil {
		return nil, err
	}
	if lazy {
		out := make([]*compiledRule, len(rules))
		for i, r := range rules {
			out[i] = lazyRule(r)
		}
		return out, nil
	}
	var errs []error
	out := make([]*compiledRule, 0, len(rules))
	for i, r := range rules {
		c, err := compile(r)
		if err != nil {
			var re *ruleError
			if errors.As(err, &re) && re.field != "" {
				key := re.field
				if strings.HasPrefix(key, "extra.") {
					key = strings.TrimPrefix(key, "extra.")
				}
				if l := lines.fieldLine(i, key); l > 0 {
					re.source = fmt.Sprintf("%s:%d", name, l)
				}
			}
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Load compiles one rules file into a DB.
func Load(name string, data []byte) (*DB, error) {
	rules, err := compileFile(name, data)
	if err != nil {
		return nil, err
	}
	return build(rules)
}

// LoadFile reads and compiles a rules file from disk.
func LoadFile(name string) (*DB, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("fingerprint rules: %w", err)
	}
	return Load(name, data)
}

// LoadFS compiles every *.toml file of dir in fsys, in name order, into
// one DB.
func LoadFS(fsys fs.FS, dir string) (*DB, error) { return loadFS(fsys, dir, false) }

func loadFS(fsys fs.FS, dir string, lazy bool) (*DB, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.toml"))
	if err != nil {
		return nil, fmt.Errorf("fingerprint rules %s: %w", dir, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("fingerprint rules %s: no *.toml files", dir)
	}
	slices.Sort(names)
	var all []*compiledRule
	var errs []error
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("fingerprint rules: %w", err))
			continue
		}
		rules, err := compileFileLazy(n, data, lazy)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, rules...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return build(all)
}

// fileLines locates rules and their keys in a rules file's text, for
// error messages (the TOML decoder does not expose positions).
type fileLines struct {
	rules []ruleBlock
	top   map[string]int
}

type ruleBlock struct {
	line int
	keys map[string]int
}

var (
	ruleHeader = regexp.MustCompile(`^\s*\[\[\s*rule\s*\]\]`)
	keyLine    = regexp.MustCompile(`^\s*([A-Za-z0-9_.-]+|"[^"]*")\s*=`)
)

func ruleLines(data []byte) fileLines {
	fl := fileLines{top: map[string]int{}}
	inMulti := ""
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		s := string(line)
		if inMulti != "" {
			if strings.Count(s, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		switch {
		case ruleHeader.MatchString(s):
			fl.rules = append(fl.rules, ruleBlock{line: n, keys: map[string]int{}})
		default:
			if m := keyLine.FindStringSubmatch(s); m != nil {
				k := strings.Trim(m[1], `"`)
				if len(fl.rules) == 0 {
					fl.top[k] = n
				} else if _, dup := fl.rules[len(fl.rules)-1].keys[k]; !dup {
					fl.rules[len(fl.rules)-1].keys[k] = n
				}
			}
		}
		for _, q := range []string{`'''`, `"""`} {
			if strings.Count(s, q)%2 == 1 {
				inMulti = q
				break
			}
		}
	}
	return fl
}

func (fl fileLines) ruleLine(i int) int {
	if i < len(fl.rules) {
		return fl.rules[i].line
	}
	return 0
}

func (fl fileLines) fieldLine(i int, key string) int {
	if i < len(fl.rules) {
		if l, ok := fl.rules[i].keys[key]; ok {
			return l
		}
		return fl.rules[i].line
	}
	return 0
}

// keyLine finds the first line defining the last part of k.
func (fl fileLines) keyLine(k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	last := k[len(k)-1]
	if len(k) == 1 {
		return fl.top[last]
	}
	for _, b := range fl.rules {
		if l, ok := b.keys[last]; ok {
			return l
		}
	}
	return 0
}
