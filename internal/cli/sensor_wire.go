package cli

import (
	"time"

	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/sensor"
	"github.com/vantagehq/vantage/sensor/respond"
)

// sensorHandler is the responder set connections are handed to.
func sensorHandler(timeout time.Duration) sensor.Handler {
	return respond.Handler(respond.Limits{Deadline: timeout})
}

// tagEvent applies the tag rules to an event before it leaves the sensor.
func tagEvent(ev *record.Event) {}
