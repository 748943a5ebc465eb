package tag

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/vantagehq/vantage/record"
)

//go:embed rules/*.toml
var embedded embed.FS

// Meta is what a tag means.
type Meta struct {
	Slug        string   `json:"slug"`
	Name        string   `json:"name"`
	Category    string   `json:"category"`  // actor, activity, tool, worm, exploit
	Intention   string   `json:"intention"` // benign, malicious, unknown
	CVEs        []string `json:"cves,omitempty"`
	Description string   `json:"description,omitempty"`
	References  []string `json:"references,omitempty"`
}

// Match is one tag an event earned, with the rule (match block) that gave
// it and a short human-readable account of why.
type Match struct {
	Slug     string `json:"slug"`
	Rule     string `json:"rule"`
	Evidence string `json:"evidence"`
}

// Engine tags events. It is safe for concurrent use. The only state it
// keeps is the bounded per-source counters of threshold tags.
type Engine struct {
	metas  []Meta
	bySlug map[string]int
	blocks []*block
	// index[transport][port] -> block indices; wide[transport] for blocks
	// without ports or with wide ranges.
	index [4]map[uint16][]int32
	wide  [4][]int32
	// threshold tags: by the tag index they count
	thresholds map[int][]*thrRule
	state      *lru
	actors     *Actors
}

type thrRule struct {
	tag    int
	of     string
	count  int
	window time.Duration
}

// Options tune an Engine.
type Options struct {
	// Actors resolves source addresses to actors (ranges only; FCrDNS is
	// done by the caller through Actors.Resolve and put in Event.Actor).
	// Nil means DefaultActors().
	Actors *Actors
	// MaxSources bounds the per-source state of threshold tags (least
	// recently seen sources are forgotten first). 0 means 65536.
	MaxSources int
}

var defaultEngine = sync.OnceValues(func() (*Engine, error) {
	return LoadFS(embedded, "rules", Options{})
})

// Default returns the engine with the built-in rules (tag/rules/*.toml)
// and the built-in actors. The rules are checked by the package's tests, so
// a failure here is a programming error and panics.
func Default() *Engine {
	e, err := defaultEngine()
	if err != nil {
		panic("tag: built-in rules: " + err.Error())
	}
	return e
}

// LoadFS loads every *.toml file in dir of fsys, in name order.
func LoadFS(fsys fs.FS, dir string, opt Options) (*Engine, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var srcs [][]byte
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, b)
	}
	return load(srcs, names, opt)
}

// Load compiles rules files (TOML, see docs/tags.md) into an engine.
func Load(opt Options, files ...[]byte) (*Engine, error) {
	names := make([]string, len(files))
	for i := range files {
		names[i] = fmt.Sprintf("file %d", i+1)
	}
	return load(files, names, opt)
}

func load(srcs [][]byte, names []string, opt Options) (*Engine, error) {
	e := &Engine{bySlug: map[string]int{}, thresholds: map[int][]*thrRule{}}
	for i := range e.index {
		e.index[i] = map[uint16][]int32{}
	}
	type pending struct {
		tag int
		t   *threshold
		src string
	}
	var thr []pending
	for fi, src := range srcs {
		var f file
		md, err := toml.Decode(string(src), &f)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", names[fi], err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return nil, fmt.Errorf("%s: unknown key %s", names[fi], und[0])
		}
		for _, t := range f.Tags {
			where := fmt.Sprintf("%s: tag %q", names[fi], t.Slug)
			if len(e.metas) >= maxTags {
				return nil, fmt.Errorf("%s: more than %d tags", where, maxTags)
			}
			if !validSlug(t.Slug) {
				return nil, fmt.Errorf("%s: slug must be A-Z, 0-9 and _", where)
			}
			if _, dup := e.bySlug[t.Slug]; dup {
				return nil, fmt.Errorf("%s: defined twice", where)
			}
			if t.Name == "" {
				return nil, fmt.Errorf("%s: no name", where)
			}
			if !categories[t.Category] {
				return nil, fmt.Errorf("%s: category %q: want actor, activity, tool, worm or exploit", where, t.Category)
			}
			if t.Intention == "" {
				t.Intention = "unknown"
			}
			if !intentions[t.Intention] {
				return nil, fmt.Errorf("%s: intention %q: want benign, malicious or unknown", where, t.Intention)
			}
			if len(t.Match) > maxBlocks {
				return nil, fmt.Errorf("%s: more than %d match blocks", where, maxBlocks)
			}
			if (len(t.Match) == 0) == (t.Threshold == nil) {
				return nil, fmt.Errorf("%s: want either match blocks or a threshold", where)
			}
			ti := len(e.metas)
			e.metas = append(e.metas, Meta{Slug: t.Slug, Name: t.Name, Category: t.Category, Intention: t.Intention,
				CVEs: t.CVEs, Description: strings.TrimSpace(t.Description), References: t.References})
			e.bySlug[t.Slug] = ti
			for n := range t.Match {
				b, err := compileBlock(ti, t.Slug, n, &t.Match[n])
				if err != nil {
					return nil, fmt.Errorf("%s: match %d: %v", where, n+1, err)
				}
				e.addBlock(b)
			}
			if t.Threshold != nil {
				thr = append(thr, pending{ti, t.Threshold, where})
			}
		}
	}
	seenID := map[string]bool{}
	for _, b := range e.blocks {
		if seenID[b.id] {
			return nil, fmt.Errorf("rule id %q used twice", b.id)
		}
		seenID[b.id] = true
	}
	for _, p := range thr {
		of, ok := e.bySlug[p.t.Of]
		if !ok {
			return nil, fmt.Errorf("%s: threshold counts unknown tag %q", p.src, p.t.Of)
		}
		if _, isThr := e.thresholds[of]; isThr || len(e.blocksOf(of)) == 0 {
			return nil, fmt.Errorf("%s: threshold must count a tag with match blocks", p.src)
		}
		if p.t.Count < 1 || p.t.Count > maxThresholdN {
			return nil, fmt.Errorf("%s: threshold count %d: want 1..%d", p.src, p.t.Count, maxThresholdN)
		}
		w, err := parseWindow(p.t.Window)
		if err != nil {
			return nil, fmt.Errorf("%s: threshold: %v", p.src, err)
		}
		e.thresholds[of] = append(e.thresholds[of], &thrRule{tag: p.tag, of: p.t.Of, count: p.t.Count, window: w})
	}
	max := opt.MaxSources
	if max <= 0 {
		max = 65536
	}
	e.state = newLRU(max)
	e.actors = opt.Actors
	if e.actors == nil {
		e.actors = DefaultActors()
	}
	return e, nil
}

func (e *Engine) blocksOf(ti int) []*block {
	var out []*block
	for _, b := range e.blocks {
		if b.tag == ti {
			out = append(out, b)
		}
	}
	return out
}

func validSlug(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (e *Engine) addBlock(b *block) {
	bi := int32(len(e.blocks))
	e.blocks = append(e.blocks, b)
	for t := 0; t < 4; t++ {
		if b.transports&(1<<t) == 0 {
			continue
		}
		if len(b.ports) == 0 {
			e.wide[t] = append(e.wide[t], bi)
			continue
		}
		width := 0
		for _, r := range b.ports {
			width += int(r.hi) - int(r.lo) + 1
		}
		if width > maxPortsIndex {
			e.wide[t] = append(e.wide[t], bi)
			continue
		}
		seen := map[uint16]bool{}
		for _, r := range b.ports {
			for p := int(r.lo); p <= int(r.hi); p++ {
				if !seen[uint16(p)] {
					seen[uint16(p)] = true
					e.index[t][uint16(p)] = append(e.index[t][uint16(p)], bi)
				}
			}
		}
	}
}

// Meta returns the metadata of a tag.
func (e *Engine) Meta(slug string) (Meta, bool) {
	i, ok := e.bySlug[slug]
	if !ok {
		return Meta{}, false
	}
	return e.metas[i], true
}

// Tags returns the metadata of every tag, in definition order.
func (e *Engine) Tags() []Meta { return slices.Clone(e.metas) }

// Actors returns the actor database the engine uses.
func (e *Engine) Actors() *Actors { return e.actors }

// evctx carries what is derived from an event once, lazily.
type evctx struct {
	ev       *record.Event
	lower    []byte
	lowered  bool
	parsed   bool
	method   string
	path     string
	ua       string
	headers  [][2][]byte // name lower-cased, value
	latin1   string
	l1done   bool
	actor    string
	actorWhy string
	actorOK  bool
}

func (c *evctx) lowerPayload() []byte {
	if !c.lowered {
		c.lower = lowerASCII(c.lower, c.ev.Payload)
		c.lowered = true
	}
	return c.lower
}

// latin1Payload is the payload with every byte as one rune (ISO 8859-1),
// for regular expressions that match binary bytes.
func (c *evctx) latin1Payload() string {
	if !c.l1done {
		c.l1done = true
		r := make([]rune, len(c.ev.Payload))
		for i, b := range c.ev.Payload {
			r[i] = rune(b)
		}
		c.latin1 = string(r)
	}
	return c.latin1
}

var methods = []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE", "PROPFIND"}

// parseHTTP takes method, path, user agent and headers from the event's
// fields, and from the payload when it is an HTTP request.
func (c *evctx) parseHTTP() {
	if c.parsed {
		return
	}
	c.parsed = true
	ev := c.ev
	c.method, c.path, c.ua = ev.HTTPMethod, ev.HTTPPath, ev.UserAgent
	p := ev.Payload
	line, rest, _ := bytes.Cut(p, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	m, after, ok := bytes.Cut(line, []byte(" "))
	if !ok || !slices.Contains(methods, string(m)) {
		return
	}
	target, proto, _ := bytes.Cut(after, []byte(" "))
	if !bytes.HasPrefix(proto, []byte("HTTP/")) {
		return
	}
	if c.method == "" {
		c.method = string(m)
	}
	if c.path == "" {
		c.path = string(target)
	}
	for i := 0; i < maxHeaderLines && len(rest) > 0; i++ {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\n"))
		l = bytes.TrimRight(l, "\r")
		if len(l) == 0 {
			break
		}
		name, val, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		n := lowerASCII(nil, bytes.TrimSpace(name))
		v := bytes.TrimSpace(val)
		c.headers = append(c.headers, [2][]byte{n, v})
		if c.ua == "" && string(n) == "user-agent" {
			c.ua = string(v)
		}
	}
}

func (c *evctx) isHTTP() bool {
	c.parseHTTP()
	return c.method != ""
}

func (e *Engine) resolveActor(c *evctx) {
	if c.actorOK {
		return
	}
	c.actorOK = true
	if c.ev.Actor != "" {
		c.actor, c.actorWhy = strings.ToUpper(c.ev.Actor), "actor set by the sensor"
		return
	}
	if a, p, ok := e.actors.LookupRange(c.ev.Src); ok {
		c.actor, c.actorWhy = a.Name, "source in "+p
	}
}

// Tag returns the tags the event earns, one Match per tag, in the order the
// tags are defined. Threshold tags (e.g. SSH_BRUTEFORCE) update the
// per-source state.
func (e *Engine) Tag(ev *record.Event) []Match {
	if ev == nil {
		return nil
	}
	c := evctx{ev: ev}
	t := transportBit(ev.Transport)
	ti := 0
	for t>>ti != 1 {
		ti++
	}
	var hit []int // tag indices, sorted at the end
	var out []Match
	try := func(list []int32) {
		for _, bi := range list {
			b := e.blocks[bi]
			if slices.Contains(hit, b.tag) {
				continue
			}
			if ok, why := e.match(b, &c); ok {
				hit = append(hit, b.tag)
				out = append(out, Match{Slug: e.metas[b.tag].Slug, Rule: b.id, Evidence: why})
			}
		}
	}
	try(e.index[ti][ev.DstPort])
	try(e.wide[ti])
	for _, m := range out {
		for _, r := range e.thresholds[e.bySlug[m.Slug]] {
			if slices.Contains(hit, r.tag) {
				continue
			}
			if n, ok := e.state.observe(ev.Src, r, ev.Time); ok {
				hit = append(hit, r.tag)
				out = append(out, Match{Slug: e.metas[r.tag].Slug, Rule: strings.ToLower(e.metas[r.tag].Slug) + "#threshold",
					Evidence: fmt.Sprintf("%d %s events from %s within %s", n, r.of, ev.Src, r.window)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return e.bySlug[out[i].Slug] < e.bySlug[out[j].Slug] })
	return out
}

// Slugs returns just the slugs of ms.
func Slugs(ms []Match) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Slug
	}
	return out
}

func inPorts(rs []portRange, p uint16) bool {
	for _, r := range rs {
		if r.lo <= p && p <= r.hi {
			return true
		}
	}
	return false
}

func triOK(want int8, have bool) bool {
	return want < 0 || (want == 1) == have
}

// match checks b against the event, cheapest checks first: header fields,
// then literals (the prefilter), then regular expressions.
func (e *Engine) match(b *block, c *evctx) (bool, string) {
	ev := c.ev
	if len(b.ports) > 0 && !inPorts(b.ports, ev.DstPort) {
		return false, ""
	}
	if b.flags >= 0 && int(ev.TCPFlags) != b.flags {
		return false, ""
	}
	if b.icmpType >= 0 && int(ev.ICMPType) != b.icmpType {
		return false, ""
	}
	if b.icmpCode >= 0 && int(ev.ICMPCode) != b.icmpCode {
		return false, ""
	}
	if !triOK(b.handshake, ev.Handshake) || !triOK(b.payloadEmpty, len(ev.Payload) == 0) ||
		!triOK(b.user, ev.Username != "") || !triOK(b.pass, ev.Password != "") {
		return false, ""
	}
	if len(ev.Payload) < b.minLen {
		return false, ""
	}
	if b.ttlSet && (int(ev.TTL) < b.ttlMin || int(ev.TTL) > b.ttlMax) {
		return false, ""
	}
	if len(b.ipid) > 0 && !slices.Contains(b.ipid, ev.IPID) {
		return false, ""
	}
	if len(b.window) > 0 && !slices.Contains(b.window, ev.TCPWindow) {
		return false, ""
	}
	if len(b.opts) > 0 && !slices.Contains(b.opts, ev.TCPOptions) {
		return false, ""
	}
	if b.seqDst && !seqIsDst(ev) {
		return false, ""
	}
	if b.masscan && !masscanIPID(ev) {
		return false, ""
	}
	if len(b.ja3) > 0 && !slices.Contains(b.ja3, strings.ToLower(ev.JA3)) {
		return false, ""
	}
	if len(b.hassh) > 0 && !slices.Contains(b.hassh, strings.ToLower(ev.HASSH)) {
		return false, ""
	}
	if len(b.src) > 0 {
		src := ev.Src.Unmap()
		ok := false
		for _, p := range b.src {
			if p.Contains(src) {
				ok = true
				break
			}
		}
		if !ok {
			return false, ""
		}
	}
	extra := ""
	if len(b.actors) > 0 {
		e.resolveActor(c)
		if c.actor == "" || !slices.Contains(b.actors, c.actor) {
			return false, ""
		}
		extra = " (" + c.actorWhy + ")"
	}
	// literals
	p := ev.Payload
	var lower []byte
	needLower := func(l lit) []byte {
		if l.fold && lower == nil {
			lower = c.lowerPayload()
		}
		return lower
	}
	if len(b.prefixes) > 0 {
		ok := false
		for _, l := range b.prefixes {
			if hasPrefix(p, needLower(l), l) {
				ok = true
				break
			}
		}
		if !ok {
			return false, ""
		}
	}
	if len(b.contains) > 0 {
		ok := false
		for _, l := range b.contains {
			if hasLit(p, needLower(l), l) {
				ok = true
				extra += fmt.Sprintf(" [found %q]", l.b)
				break
			}
		}
		if !ok {
			return false, ""
		}
	}
	for _, l := range b.all {
		if !hasLit(p, needLower(l), l) {
			return false, ""
		}
	}
	// HTTP
	if b.needsHTTP {
		if !triOK(b.http, c.isHTTP()) {
			return false, ""
		}
		if len(b.methods) > 0 && !slices.Contains(b.methods, c.method) {
			return false, ""
		}
		if b.pathRe != nil && !b.pathRe.MatchString(c.path) {
			return false, ""
		}
		if b.uaRe != nil && !b.uaRe.MatchString(c.ua) {
			return false, ""
		}
		for _, h := range b.headers {
			ok := false
			for _, kv := range c.headers {
				if string(kv[0]) == h.name && h.re.Match(kv[1]) {
					ok = true
					break
				}
			}
			if !ok {
				return false, ""
			}
		}
	}
	if b.sniRe != nil && !b.sniRe.MatchString(ev.SNI) {
		return false, ""
	}
	if b.optsRe != nil && !b.optsRe.MatchString(ev.TCPOptions) {
		return false, ""
	}
	if b.re != nil {
		if b.latin1 {
			s := c.latin1Payload()
			loc := b.re.FindStringIndex(s)
			if loc == nil {
				return false, ""
			}
			extra += fmt.Sprintf(", payload matched %q", clip([]byte(s[loc[0]:loc[1]]), 64))
		} else {
			loc := b.re.FindIndex(p)
			if loc == nil {
				return false, ""
			}
			extra += fmt.Sprintf(", payload matched %q", clip(p[loc[0]:loc[1]], 64))
		}
	}
	return true, b.summary + extra
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func v4(a netip.Addr) (uint32, bool) {
	a = a.Unmap()
	if !a.Is4() {
		return 0, false
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}

// seqIsDst: Mirai-derived scanners put the destination address in the TCP
// sequence number of their SYNs.
func seqIsDst(ev *record.Event) bool {
	d, ok := v4(ev.Dst)
	return ok && d != 0 && ev.TCPSeq == d
}

// masscanIPID: masscan derives the IP ID from the destination:
// ip_id = (dst_ip ^ dst_port ^ seq) & 0xffff.
func masscanIPID(ev *record.Event) bool {
	d, ok := v4(ev.Dst)
	if !ok {
		return false
	}
	return uint16(d^uint32(ev.DstPort)^ev.TCPSeq) == ev.IPID
}

// lru is the bounded per-source state of threshold tags.
type lru struct {
	mu    sync.Mutex
	max   int
	items map[lruKey]*lruEntry
	head  *lruEntry // most recent
	tail  *lruEntry
}

type lruKey struct {
	src netip.Addr
	tag int
}

type lruEntry struct {
	key        lruKey
	times      []time.Time // ring of the last count event times
	next       int
	prev, succ *lruEntry
}

func newLRU(max int) *lru { return &lru{max: max, items: map[lruKey]*lruEntry{}} }

func (l *lru) unlink(e *lruEntry) {
	if e.prev != nil {
		e.prev.succ = e.succ
	} else {
		l.head = e.succ
	}
	if e.succ != nil {
		e.succ.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.succ = nil, nil
}

func (l *lru) pushFront(e *lruEntry) {
	e.succ = l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
}

// observe records one event of r.of from src at t and reports whether
// r.count of them fell within r.window, and how many are remembered.
func (l *lru) observe(src netip.Addr, r *thrRule, t time.Time) (int, bool) {
	if t.IsZero() {
		t = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := lruKey{src, r.tag}
	e := l.items[k]
	if e == nil {
		if len(l.items) >= l.max && l.tail != nil {
			old := l.tail
			l.unlink(old)
			delete(l.items, old.key)
		}
		e = &lruEntry{key: k, times: make([]time.Time, 0, r.count)}
		l.items[k] = e
	} else {
		l.unlink(e)
	}
	l.pushFront(e)
	if len(e.times) < r.count {
		e.times = append(e.times, t)
	} else {
		e.times[e.next] = t
		e.next = (e.next + 1) % r.count
	}
	if len(e.times) < r.count {
		return len(e.times), false
	}
	// the oldest remembered time is at e.next
	oldest := e.times[e.next%len(e.times)]
	if t.Sub(oldest) <= r.window {
		return r.count, true
	}
	return r.count, false
}

// Len is the number of sources the state remembers.
func (l *lru) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.items)
}

// DefaultWith returns an engine with the built-in rules and the given
// actors (DefaultActors with the operator's own files or imports merged).
func DefaultWith(actors *Actors) (*Engine, error) {
	return LoadFS(embedded, "rules", Options{Actors: actors})
}
