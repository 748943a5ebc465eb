package cli

import (
	"sync"
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

var tagEngine = sync.OnceValue(tag.Default)

// tagEvent applies the tag rules to an event before it leaves the sensor:
// its tags, the actor its source belongs to (by address range: a sensor
// makes no DNS queries), and the event's verdict.
func tagEvent(ev *record.Event) {
	e := tagEngine()
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
