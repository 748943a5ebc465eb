package respond

import (
	"context"

	"github.com/vantagehq/vantage/record"
)

// silent records the client's first bytes (up to Limits.MaxPayload) and
// never answers: the fallback for anything no other responder claims.
func init() {
	Register(&Responder{Name: "silent", Serve: serveSilent})
}

func serveSilent(ctx context.Context, c *Conn, ev *record.Event) error {
	buf := make([]byte, 1024)
	for len(ev.Payload) < c.Lim.MaxPayload {
		if _, err := c.Read(buf); err != nil {
			if isTimeout(err) {
				return nil
			}
			return err
		}
	}
	return nil
}
