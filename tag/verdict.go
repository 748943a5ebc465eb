package tag

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vantagehq/vantage/record"
)

// Classifications of a source.
const (
	Benign    = "benign"
	Malicious = "malicious"
	Unknown   = "unknown"
)

// Evidence is one reason behind a verdict.
type Evidence struct {
	Kind  string    `json:"kind"`           // "actor" or "tag"
	Slug  string    `json:"slug,omitempty"` // the tag, or the actor's name
	Rule  string    `json:"rule,omitempty"` // the match block that gave the tag
	Event record.ID `json:"event,omitzero"` // the first event that earned it
	Text  string    `json:"text"`
}

// Verdict classifies a source from its actor (nil when none is known) and
// the tags it earned: benign when the actor is a known benign organisation
// (this overrides everything else), malicious when the actor is known
// malicious or any tag's intention is malicious, otherwise unknown. The
// evidence lists what decided it.
func Verdict(actor *Actor, tags []Meta) (string, []Evidence) {
	hits := make([]Hit, len(tags))
	for i, t := range tags {
		hits[i] = Hit{Meta: t}
	}
	return verdict(actor, "", hits)
}

func verdict(actor *Actor, actorWhy string, hits []Hit) (string, []Evidence) {
	if actor != nil {
		why := actorWhy
		if why == "" {
			why = "known actor"
		}
		switch actor.Intention {
		case Benign:
			return Benign, []Evidence{{Kind: "actor", Slug: actor.Name, Text: fmt.Sprintf("actor %s is a known benign organisation (%s)", actor.Name, why)}}
		case Malicious:
			ev := []Evidence{{Kind: "actor", Slug: actor.Name, Text: fmt.Sprintf("actor %s is known malicious (%s)", actor.Name, why)}}
			return Malicious, append(ev, maliciousEvidence(hits)...)
		}
	}
	if ev := maliciousEvidence(hits); len(ev) > 0 {
		return Malicious, ev
	}
	return Unknown, nil
}

func maliciousEvidence(hits []Hit) []Evidence {
	var out []Evidence
	for _, h := range hits {
		if h.Meta.Intention != Malicious {
			continue
		}
		text := fmt.Sprintf("tag %s (%s) is malicious", h.Meta.Slug, h.Meta.Category)
		if h.Evidence != "" {
			text += ": " + h.Evidence
		}
		out = append(out, Evidence{Kind: "tag", Slug: h.Meta.Slug, Rule: h.Rule, Event: h.Event, Text: text})
	}
	return out
}

// Hit is a tag a source earned: the first event and rule that gave it, and
// how often it was seen.
type Hit struct {
	Meta     Meta      `json:"meta"`
	Rule     string    `json:"rule"`
	Evidence string    `json:"evidence"`
	Event    record.ID `json:"event"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Count    int       `json:"count"`
}

// Profile accumulates what one source did, for its verdict. It is bounded:
// one Hit per tag.
type Profile struct {
	Src      netip.Addr `json:"src"`
	Actor    *Actor     `json:"actor,omitempty"`
	ActorWhy string     `json:"actor_why,omitempty"`
	Hits     []Hit      `json:"hits"`
}

// Observe adds an event and the tags it earned to the profile. Matches of
// actor tags set the profile's actor.
func (e *Engine) Observe(p *Profile, ev *record.Event, ms []Match) {
	if !p.Src.IsValid() {
		p.Src = ev.Src
	}
	for _, m := range ms {
		meta, ok := e.Meta(m.Slug)
		if !ok {
			continue
		}
		if meta.Category == "actor" && p.Actor == nil {
			if a, ok := e.actors.Actor(meta.Slug); ok {
				p.Actor, p.ActorWhy = a, m.Evidence
			}
		}
		found := false
		for i := range p.Hits {
			h := &p.Hits[i]
			if h.Meta.Slug == m.Slug {
				h.Count++
				if ev.Time.After(h.Last) {
					h.Last = ev.Time
				}
				found = true
				break
			}
		}
		if !found {
			p.Hits = append(p.Hits, Hit{Meta: meta, Rule: m.Rule, Evidence: m.Evidence, Event: ev.ID, First: ev.Time, Last: ev.Time, Count: 1})
		}
	}
}

// SetActor records an actor found outside the tag rules (for instance by
// Actors.Resolve with forward-confirmed reverse DNS).
func (p *Profile) SetActor(a *Actor, why string) { p.Actor, p.ActorWhy = a, why }

// Verdict classifies the profile's source; see the package function
// Verdict. Evidence names the rule and the first event behind each tag.
func (p *Profile) Verdict() (string, []Evidence) { return verdict(p.Actor, p.ActorWhy, p.Hits) }
