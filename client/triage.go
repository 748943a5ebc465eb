package client

import (
	"context"
	"io"

	"github.com/vantagehq/vantage/triage"
)

// Triage sends a log (nginx/Apache access, iptables/nftables LOG, sshd, a
// list or CSV of addresses) to the server, which reads it and answers
// what its sensors think of every source, what needs attention first.
// The server bounds the body (its API max body) and the distinct sources;
// for bigger logs read them locally (triage.Tally) and ask Bulk in chunks.
func (c *Client) Triage(ctx context.Context, log io.Reader) (*triage.Report, error) {
	var r triage.Report
	if err := c.do(ctx, "POST", "/api/v1/triage", nil, log, "text/plain", &r); err != nil {
		return nil, err
	}
	return &r, nil
}
