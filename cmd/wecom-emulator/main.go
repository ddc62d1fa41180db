// Command wecom-emulator runs a faithful WeCom (企业微信) contacts API and callback
// emulator for tests, demos and load tests. See package internal/emulator.
//
// Flags (each also read from the environment variable in brackets; a flag given on the
// command line wins):
//
//	-addr 127.0.0.1:9400         listen address [WECOM_EMULATOR_ADDR]
//	-corp-id ID                  main corp id [WECOM_EMULATOR_CORP_ID]
//	-contact-secret S            contacts-sync secret [WECOM_EMULATOR_CONTACT_SECRET]
//	-console-secret C            console secret: its writes are called back [WECOM_EMULATOR_CONSOLE_SECRET]
//	-app-secret A                read-only app secret [WECOM_EMULATOR_APP_SECRET]
//	-callback-url URL            change_contact callback URL [WECOM_EMULATOR_CALLBACK_URL]
//	-callback-token T            callback Token [WECOM_EMULATOR_CALLBACK_TOKEN]
//	-callback-aes-key K          callback EncodingAESKey [WECOM_EMULATOR_CALLBACK_AES_KEY]
//	-minimal                     post-2022 minimal callbacks [WECOM_EMULATOR_MINIMAL]
//	-seed-users N                seed an org of N members [WECOM_EMULATOR_SEED_USERS]
//	...                          run with -h for the rest
//
// When ready it prints one line to stdout:
//
//	wecom-emulator ready addr=127.0.0.1:41234 corp_id=ww... users=N
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wecomsync/wecomsync/internal/emulator"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wecom-emulator:", err)
		os.Exit(1)
	}
}

// run parses flags and environment, starts the emulator, prints the ready line and
// serves until ctx ends or SIGINT/SIGTERM, then shuts down (saving the state file).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, logLevel, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	srv, err := emulator.New(cfg)
	if err != nil {
		return fmt.Errorf("creating emulator: %w", err)
	}
	if err := srv.Start(ctx); err != nil {
		_ = srv.Close(context.Background())
		return fmt.Errorf("starting emulator: %w", err)
	}
	fmt.Fprintf(stdout, "wecom-emulator ready addr=%s corp_id=%s users=%d\n", srv.Addr(), cfg.CorpID, srv.Directory().UserCount())
	cfg.Logger.InfoContext(ctx, "wecom-emulator listening", "addr", srv.Addr(), "corp_id", cfg.CorpID)

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down emulator: %w", err)
	}
	return nil
}

// parseConfig reads flags, falling back to WECOM_EMULATOR_* variables for unset flags.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (emulator.Config, slog.Level, error) {
	fs := flag.NewFlagSet("wecom-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                                 emulator.Config
		rateLimit, concurrency              int
		tokenTTL, retryDelay, stateInterval time.Duration
		cbRetries                           int
		verbose                             bool
		faultErr, faultFreq, faultConc      float64
		faultDrop, faultDup, faultReorder   float64
		faultLatency, faultWindow           int
	)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:9400", "listen address (use :0 for a free port)")
	fs.StringVar(&cfg.CorpID, "corp-id", "", "main corp id (required)")
	fs.StringVar(&cfg.CorpName, "corp-name", "模拟企业", "root department name")
	fs.StringVar(&cfg.ContactSecret, "contact-secret", "", "contacts-sync secret (required)")
	fs.StringVar(&cfg.ConsoleSecret, "console-secret", "", "console secret: writes with its token are called back")
	fs.StringVar(&cfg.AppSecret, "app-secret", "", "read-only self-built app secret (writes answer 48002)")
	fs.StringVar(&cfg.CallbackURL, "callback-url", "", "change_contact callback URL")
	fs.StringVar(&cfg.CallbackToken, "callback-token", "", "callback Token")
	fs.StringVar(&cfg.CallbackAESKey, "callback-aes-key", "", "callback EncodingAESKey (43 characters)")
	fs.BoolVar(&cfg.CallbackMinimal, "minimal", false, "send only the post-2022-08-15 minimal callbacks")
	fs.BoolVar(&cfg.SkipCallbackVerify, "skip-callback-verify", false, "skip the GET callback URL verification at start")
	fs.IntVar(&cbRetries, "callback-retries", emulator.DefaultCallbackRetries, "callback retries after a failed attempt")
	fs.DurationVar(&retryDelay, "callback-retry-delay", emulator.DefaultCallbackRetryDelay, "pause before a callback retry")
	fs.IntVar(&cfg.SeedUsers, "seed-users", 0, "seed an org of N members (ignored when the state file exists)")
	fs.Uint64Var(&cfg.SeedRandom, "seed-random", 1, "random seed of the generated org")
	fs.StringVar(&cfg.StatePath, "state", "", "state file: loaded at start when present, saved at shutdown")
	fs.DurationVar(&stateInterval, "state-interval", 0, "also save the state file this often (0 = only at shutdown)")
	fs.IntVar(&rateLimit, "rate-limit", emulator.DefaultRateLimitPerMinute, "calls per minute per API before 45009 (0 = unlimited)")
	fs.IntVar(&concurrency, "concurrency-limit", emulator.DefaultConcurrencyLimit, "in-flight calls per API before 45033 (0 = unlimited)")
	fs.DurationVar(&tokenTTL, "token-ttl", emulator.DefaultTokenTTL, "access_token validity")
	fs.StringVar(&cfg.LinkedCorpID, "linked-corp-id", "", "id of a linked corp served by the linkedcorp APIs")
	fs.IntVar(&cfg.LinkedCorpUsers, "linked-corp-users", emulator.DefaultLinkedCorpUsers, "members of the linked corp")
	fs.BoolVar(&cfg.AppSensitiveRestricted, "app-sensitive-restricted", false, "app secret's user/get and user/list omit sensitive fields (2022-06-20 rule)")
	fs.BoolVar(&cfg.ContactNewIP, "contact-new-ip", false, "contacts secret gets 48009 on user/list, user/simplelist, department/list, department/get")
	fs.Float64Var(&faultErr, "fault-error-rate", 0, "share of REST calls answering -1")
	fs.Float64Var(&faultFreq, "fault-freq-limit-rate", 0, "share of REST calls answering 45009")
	fs.Float64Var(&faultConc, "fault-concurrency-rate", 0, "share of REST calls answering 45033")
	fs.IntVar(&faultLatency, "fault-latency-ms", 0, "added latency per REST call")
	fs.Float64Var(&faultDrop, "fault-callback-drop-rate", 0, "share of callbacks dropped")
	fs.Float64Var(&faultDup, "fault-callback-duplicate-rate", 0, "share of callbacks delivered twice")
	fs.Float64Var(&faultReorder, "fault-callback-reorder-rate", 0, "share of callbacks swapped with a later one")
	fs.IntVar(&faultWindow, "fault-callback-reorder-window", 3, "reorder window (callbacks)")
	fs.IntVar(&cfg.Jobs.RowsPerSecond, "job-rows-per-second", emulator.DefaultJobRowsPerSecond, "simulated import/export job speed (rows per second of server clock)")
	fs.DurationVar(&cfg.Jobs.MinDuration, "job-min-duration", emulator.DefaultJobMinDuration, "shortest import/export job")
	fs.BoolVar(&cfg.Jobs.Immediate, "job-immediate", false, "complete import/export jobs inside the submitting call (test mode)")
	fs.StringVar(&cfg.Jobs.Dir, "export-dir", "", "directory for export files (default: a temporary directory removed at exit)")
	fs.StringVar(&cfg.Jobs.PublicURL, "public-url", "", "base URL of export download links (default: http://<request Host>)")
	fs.BoolVar(&verbose, "v", false, "debug logging")
	if err := applyEnv(fs, getenv); err != nil {
		return cfg, 0, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, 0, fmt.Errorf("parsing flags: %w", err)
	}
	if fs.NArg() > 0 {
		return cfg, 0, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg.RateLimitPerMinute = unlimitedIfZero(rateLimit)
	cfg.ConcurrencyLimit = unlimitedIfZero(concurrency)
	cfg.TokenTTL = tokenTTL
	cfg.CallbackRetries = cbRetries
	if cbRetries == 0 {
		cfg.CallbackRetries = -1
	}
	cfg.CallbackRetryDelay = retryDelay
	if retryDelay == 0 {
		cfg.CallbackRetryDelay = -1
	}
	cfg.StateInterval = stateInterval
	cfg.Faults = emulator.Faults{ErrorRate: faultErr, FreqLimitRate: faultFreq, ConcurrencyRate: faultConc,
		LatencyMS: faultLatency, CallbackDropRate: faultDrop, CallbackDuplicateRate: faultDup,
		CallbackReorderRate: faultReorder, CallbackReorderWindow: faultWindow}
	if cfg.CorpID == "" {
		return cfg, 0, errors.New("-corp-id (WECOM_EMULATOR_CORP_ID) must be set")
	}
	if cfg.ContactSecret == "" {
		return cfg, 0, errors.New("-contact-secret (WECOM_EMULATOR_CONTACT_SECRET) must be set")
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return cfg, level, nil
}

func unlimitedIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// applyEnv sets each flag from WECOM_EMULATOR_<FLAG_NAME> when that variable is set, so
// command-line flags parsed afterwards override it.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "WECOM_EMULATOR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment %s=%s: %w", name, strconv.Quote(v), e)
			}
		}
	})
	return err
}
