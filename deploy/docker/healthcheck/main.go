// Command healthcheck probes an HTTP endpoint and exits 0 when it answers 2xx, else 1. The
// container images run it as their HEALTHCHECK (and compose uses it for depends_on
// conditions), because their distroless base has no shell, curl or wget.
//
// Usage: healthcheck [-timeout 2s] [URL]; without URL it probes $HEALTHCHECK_URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// run probes the URL given in args (or $HEALTHCHECK_URL) once and returns nil when it
// answers 2xx within the timeout. It prints the answer's status on stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	url := getenv("HEALTHCHECK_URL")
	switch fs.NArg() {
	case 0:
	case 1:
		url = fs.Arg(0)
	default:
		return fmt.Errorf("takes at most one URL, got %q", strings.Join(fs.Args(), " "))
	}
	if url == "" {
		return errors.New("no URL: pass one or set HEALTHCHECK_URL")
	}
	if *timeout <= 0 {
		return fmt.Errorf("-timeout must be positive, got %s", *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building request for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probing %s: %w", url, err)
	}
	defer resp.Body.Close()
	// The readiness endpoints say why they are not ready in a short body; keep a line of it.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s %s\n", url, resp.Status)
	return nil
}
