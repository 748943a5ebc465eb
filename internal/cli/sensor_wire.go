package cli

import (
	"os"
	"strings"
	"time"

	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/sensor"
	"github.com/vantagehq/vantage/sensor/respond"
	"github.com/vantagehq/vantage/tag"
)

// sensorHandler is the responder set connections are handed to.
func sensorHandler(timeout time.Duration) sensor.Handler {
	return respond.Handler(respond.Limits{Deadline: timeout})
}

// sensorTagger builds the tag engine: the built-in rules and actors, the
// operator's actor files (our TOML format, docs/tags.md) and plain lists of
// a named actor's addresses, as scanning organisations publish them
// ("SHODAN=shodan-ips.txt").
func sensorTagger(actorFiles, rangeLists []string) (func(*record.Event), error) {
	if len(actorFiles) == 0 && len(rangeLists) == 0 {
		e := tag.Default()
		return func(ev *record.Event) { tagEvent(e, ev) }, nil
	}
	actors := tag.DefaultActors()
	for _, name := range actorFiles {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, usageError{err}
		}
		more, err := tag.LoadActors(b)
		if err != nil {
			return nil, usagef("--actors %s: %v", name, err)
		}
		for _, a := range more.List() {
			if err := actors.Add(a); err != nil {
				return nil, usagef("--actors %s: %v", name, err)
			}
		}
	}
	for _, spec := range rangeLists {
		actor, name, ok := strings.Cut(spec, "=")
		if !ok || actor == "" || name == "" {
			return nil, usagef("--actor-ranges %q: want ACTOR=FILE, e.g. SHODAN=shodan.txt", spec)
		}
		intention := "unknown"
		if a, ok := actors.Actor(strings.ToUpper(actor)); ok {
			intention = a.Intention
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, usageError{err}
		}
		_, err = actors.ImportRanges(f, strings.ToUpper(actor), intention)
		f.Close()
		if err != nil {
			return nil, usagef("--actor-ranges %s: %v", spec, err)
		}
	}
	e, err := tag.DefaultWith(actors)
	if err != nil {
		return nil, err
	}
	return func(ev *record.Event) { tagEvent(e, ev) }, nil
}

// tagEvent applies the tag rules to an event before it leaves the sensor:
// its tags, the actor its source belongs to (by address range: a sensor
// makes no DNS queries), and the event's verdict.
func tagEvent(e *tag.Engine, ev *record.Event) {
	ms := e.Tag(ev)
	ev.Tags = tag.Slugs(ms)
	var actor *tag.Actor
	if a, _, ok := e.Actors().LookupRange(ev.Src); ok {
		actor = a
		ev.Actor = a.Name
	}
	metas := make([]tag.Meta, 0, len(ms))
	for _, m := range ms {
		if meta, ok := e.Meta(m.Slug); ok {
			metas = append(metas, meta)
		}
	}
	ev.Classification, _ = tag.Verdict(actor, metas)
}
