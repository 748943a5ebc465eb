package notify

import (
	"context"
	"log/slog"
)

// Log writes messages to a logger at Warn level, with the event, id and
// subject as attributes. It never fails.
type Log struct {
	Log *slog.Logger // nil: slog.Default()
}

// Name returns "log".
func (Log) Name() string { return "log" }

// Send logs m: the log message is m.Subject, one line a log search finds
// (m.Text when there is no subject); the text goes with it as an attribute.
func (l Log) Send(ctx context.Context, m Message) error {
	lg := l.Log
	if lg == nil {
		lg = slog.Default()
	}
	msg := m.Subject
	if msg == "" {
		msg = m.Text
	}
	attrs := []slog.Attr{
		slog.String("event", m.Event),
		slog.String("id", m.ID),
	}
	if m.Text != "" && m.Text != msg {
		attrs = append(attrs, slog.String("text", m.Text))
	}
	if !m.Time.IsZero() {
		attrs = append(attrs, slog.Time("at", m.Time))
	}
	lg.LogAttrs(context.WithoutCancel(ctx), slog.LevelWarn, msg, attrs...)
	return nil
}
