package api_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/vantagehq/vantage/api"
)

func TestDbgTmp(t *testing.T) {
	e := getEnv(t)
	s := e.server(func(c *api.Config) { c.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)) })
	for _, m := range []string{"-9223372036854775808", "-9223372036854775807", "9223372036854775807", "9223372036854775806", "-62135596800000000", "-62135596800000001", "253402300800000000", "9000000000000000000", "-210866803200000000", "-210866803200000001", "-9000000000000000000"} {
		r := get(s, "/api/v1/sensors/search?"+qs("cursor", cursorOf("e", m, "0123456789abcdef0123456789abcdef")))
		t.Log(m, r.code)
	}
}
