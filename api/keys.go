package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Scopes a key can have.
const (
	ScopeRead  = "read"  // lookups, search, statistics
	ScopeScan  = "scan"  // publish scan results and sensor events
	ScopeAdmin = "admin" // manage keys, see usage
	// ScopeMonitor manages watchlists, alerts and mutes: what a team owns
	// is its own business, so reading them needs it too
	ScopeMonitor = "monitor"
)

// Scopes lists the valid scopes.
var Scopes = []string{ScopeRead, ScopeScan, ScopeMonitor, ScopeAdmin}

// Key is an API key as stored: the secret itself is never stored, only
// its SHA-256.
type Key struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	Hash      string    `json:"hash,omitempty"`
	RateLimit float64   `json:"rate_limit,omitempty"` // requests/s; 0 = the server's default
	Created   time.Time `json:"created"`
}

// Has reports whether the key carries a scope (admin implies all).
func (k *Key) Has(scope string) bool {
	return slices.Contains(k.Scopes, scope) || slices.Contains(k.Scopes, ScopeAdmin)
}

// Keys stores API keys in the bus's "apikeys" bucket, so every server of a
// cluster sees the same keys. A secret reads "vtg_<id>_<random>": the ID
// finds the record, the hash proves the rest.
type Keys struct {
	kv    jetstream.KeyValue
	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	key Key
	at  time.Time
}

// cacheFor bounds how long a removed key keeps working on one server.
const cacheFor = 10 * time.Second

// NewKeys uses a key-value bucket.
func NewKeys(kv jetstream.KeyValue) *Keys { return &Keys{kv: kv, cache: map[string]cached{}} }

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Create makes a key and returns its secret, which is shown once.
func (k *Keys) Create(ctx context.Context, name string, scopes []string, rate float64) (string, Key, error) {
	for _, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return "", Key{}, fmt.Errorf("unknown scope %q (want %s)", s, strings.Join(Scopes, ", "))
		}
	}
	if len(scopes) == 0 {
		return "", Key{}, errors.New("a key needs at least one scope")
	}
	var id [5]byte
	var secret [20]byte
	rand.Read(id[:])
	rand.Read(secret[:])
	key := Key{ID: hex.EncodeToString(id[:]), Name: name, Scopes: scopes, RateLimit: rate, Created: time.Now().UTC()}
	full := "vtg_" + key.ID + "_" + strings.ToLower(b32.EncodeToString(secret[:]))
	key.Hash = hashSecret(full)
	b, _ := json.Marshal(key)
	if _, err := k.kv.Create(ctx, key.ID, b); err != nil {
		return "", Key{}, fmt.Errorf("store key: %w", err)
	}
	return full, key, nil
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Check returns the key a secret belongs to.
func (k *Keys) Check(ctx context.Context, secret string) (Key, bool) {
	rest, ok := strings.CutPrefix(secret, "vtg_")
	if !ok {
		return Key{}, false
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 10 {
		return Key{}, false
	}
	k.mu.Lock()
	c, hit := k.cache[secret]
	k.mu.Unlock()
	if hit && time.Since(c.at) < cacheFor {
		return c.key, true
	}
	e, err := k.kv.Get(ctx, id)
	if err != nil {
		return Key{}, false
	}
	var key Key
	if json.Unmarshal(e.Value(), &key) != nil {
		return Key{}, false
	}
	if subtle.ConstantTimeCompare([]byte(key.Hash), []byte(hashSecret(secret))) != 1 {
		return Key{}, false
	}
	k.mu.Lock()
	if len(k.cache) > 10000 {
		clear(k.cache)
	}
	k.cache[secret] = cached{key, time.Now()}
	k.mu.Unlock()
	return key, true
}

// List returns every key (without hashes).
func (k *Keys) List(ctx context.Context) ([]Key, error) {
	lister, err := k.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var out []Key
	for id := range lister.Keys() {
		e, err := k.kv.Get(ctx, id)
		if err != nil {
			continue
		}
		var key Key
		if json.Unmarshal(e.Value(), &key) == nil {
			key.Hash = ""
			out = append(out, key)
		}
	}
	slices.SortFunc(out, func(a, b Key) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Delete removes a key.
func (k *Keys) Delete(ctx context.Context, id string) error {
	if _, err := k.kv.Get(ctx, id); err != nil {
		return fmt.Errorf("key %s: %w", id, errNotFound)
	}
	if err := k.kv.Purge(ctx, id); err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	k.mu.Lock()
	clear(k.cache)
	k.mu.Unlock()
	return nil
}

// Empty reports whether no key exists yet.
func (k *Keys) Empty(ctx context.Context) (bool, error) {
	lister, err := k.kv.ListKeys(ctx)
	if err != nil {
		return false, err
	}
	for range lister.Keys() {
		return false, nil
	}
	return true, nil
}
