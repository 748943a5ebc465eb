package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServe(t *testing.T) {
	reg := NewRegistry("test")
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "vantage_test_things_total", Help: "Things."})
	c.Add(3)
	reg.MustRegister(c)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + s.Addr().String() + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"# HELP vantage_test_things_total Things.", "vantage_test_things_total 3",
		`vantage_build_info{commit=`, `role="test"`, "go_goroutines ", "process_start_time_seconds ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}

	// the address is taken while the server runs
	if _, err := Start(ctx, s.Addr().String(), reg); err == nil {
		t.Error("a second server on the same address started")
	}

	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned before ctx ended: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server still running after ctx ended")
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("still serving after ctx ended")
	}
}

func TestServeBadAddress(t *testing.T) {
	if err := Serve(context.Background(), "127.0.0.1:notaport", NewRegistry("test")); err == nil || !strings.Contains(err.Error(), "metrics:") {
		t.Fatalf("err = %v", err)
	}
}
