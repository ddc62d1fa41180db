package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wecomsync/wecomsync/internal/tenant"
	"github.com/wecomsync/wecomsync/internal/worker"
)

// DefaultAPIURL is WeCom's API host (WECOM_API_URL).
const DefaultAPIURL = "https://qyapi.weixin.qq.com"

// DefaultPartitions is WORKER_PARTITIONS's default: one lane. A lane applies its corps'
// events in larger transactions the more corps it carries, so on one machine one lane is
// the fastest (make bench-e2e on 2 cores: 5,300 events/s with one lane, 4,300 with two,
// 3,000 with eight). Raise it to spread corps over several worker replicas (each lane is
// applied by one replica at a time), e.g. 2–4 lanes per replica.
const DefaultPartitions = 1

// Config is the worker's configuration, read from the environment.
type Config struct {
	DatabaseURL string // DATABASE_URL, required
	NATSURL     string // NATS_URL
	APIURL      string // WECOM_API_URL
	Tenants     []tenant.Tenant
	AdminAddr   string // WORKER_ADMIN_ADDR
	LogLevel    slog.Level
	// Lane names the apply lanes (WORKER_CONSUMER): with one partition it is the one lane,
	// over every corp; with more, partition i is the lane "<name>-p<i>".
	Lane worker.Lane
	// Partitions is how many lanes the corps are spread over (WORKER_PARTITIONS; default
	// DefaultPartitions). Each partition is applied by one replica at a time, so it bounds
	// how many replicas share the work.
	Partitions int
	// Lane tuning (WORKER_BATCH_SIZE, WORKER_MAX_WAIT, WORKER_ACK_WAIT, WORKER_PINNED_TTL,
	// WORKER_MAX_DELIVER, WORKER_RETRY_BACKOFF, WORKER_SHUTDOWN_TIMEOUT, WORKER_APPLY_TIMEOUT).
	Tuning worker.Options
	// LookupConcurrency bounds concurrent lookups per batch (WORKER_LOOKUP_CONCURRENCY).
	LookupConcurrency int
	// APIConcurrency bounds concurrent WeCom calls per corp (WORKER_API_CONCURRENCY).
	APIConcurrency int
	// InitialSync runs a full sync of every corp whose mirror is empty before applying
	// events (WORKER_INITIAL_SYNC, default true).
	InitialSync bool
	// ChangesReplicas is the WECOM_CHANGES stream's replica count (WECOM_CHANGES_REPLICAS,
	// default 1; 3 on a JetStream cluster). The stream is updated to it at every start.
	ChangesReplicas int
}

// need says which parts of the configuration a subcommand uses.
type need struct {
	nats    bool
	tenants bool // the corps (and, with contact, their contacts-sync secrets)
	contact bool
}

func loadConfig(getenv func(string) string, n need) (Config, error) {
	c := Config{
		NATSURL:           nats.DefaultURL,
		APIURL:            DefaultAPIURL,
		AdminAddr:         ":8081",
		Lane:              worker.DefaultLane,
		Tuning:            worker.DefaultOptions,
		LookupConcurrency: 4,
		APIConcurrency:    8,
		InitialSync:       true,
	}
	c.DatabaseURL = getenv("DATABASE_URL")
	if f := getenv("DATABASE_URL_FILE"); f != "" {
		// The URL may hold a password, so it can come from a secret file like the others.
		if c.DatabaseURL != "" {
			return c, errors.New("set DATABASE_URL or DATABASE_URL_FILE, not both")
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			return c, fmt.Errorf("reading DATABASE_URL_FILE: %w", err)
		}
		c.DatabaseURL = strings.TrimSpace(string(raw))
	}
	if c.DatabaseURL == "" {
		return c, errors.New("DATABASE_URL is required (a Postgres URL such as postgres://user@host:5432/db)")
	}
	c.ChangesReplicas = 1
	if v := getenv("WECOM_CHANGES_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5 {
			return c, fmt.Errorf("WECOM_CHANGES_REPLICAS must be 1 to 5, got %q", v)
		}
		c.ChangesReplicas = n
	}
	if v := getenv("NATS_URL"); v != "" {
		c.NATSURL = v
	}
	if v := getenv("WECOM_API_URL"); v != "" {
		if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return c, fmt.Errorf("WECOM_API_URL must start with http:// or https://, got %q", v)
		}
		c.APIURL = v
	}
	if v := getenv("WORKER_ADMIN_ADDR"); v != "" {
		c.AdminAddr = v
	}
	if v := getenv("WORKER_CONSUMER"); v != "" {
		if strings.ContainsAny(v, ".*> \t") {
			return c, fmt.Errorf("WORKER_CONSUMER may not contain '.', '*', '>' or spaces, got %q", v)
		}
		c.Lane.Name = v
	}
	if err := c.LogLevel.UnmarshalText([]byte(or(getenv("LOG_LEVEL"), "info"))); err != nil {
		return c, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, got %q", getenv("LOG_LEVEL"))
	}
	var err error
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{"WORKER_MAX_WAIT", &c.Tuning.MaxWait},
		{"WORKER_ACK_WAIT", &c.Tuning.AckWait},
		{"WORKER_PINNED_TTL", &c.Tuning.PinnedTTL},
		{"WORKER_SHUTDOWN_TIMEOUT", &c.Tuning.ShutdownGrace},
		{"WORKER_APPLY_TIMEOUT", &c.Tuning.ApplyTimeout},
	} {
		if v := getenv(d.name); v != "" {
			if *d.dst, err = time.ParseDuration(v); err != nil || *d.dst <= 0 {
				return c, fmt.Errorf("%s must be a positive duration such as 30s, got %q", d.name, v)
			}
		}
	}
	for _, i := range []struct {
		name string
		dst  *int
	}{
		{"WORKER_BATCH_SIZE", &c.Tuning.BatchSize},
		{"WORKER_MAX_DELIVER", &c.Tuning.MaxDeliver},
		{"WORKER_LOOKUP_CONCURRENCY", &c.LookupConcurrency},
		{"WORKER_API_CONCURRENCY", &c.APIConcurrency},
	} {
		if v := getenv(i.name); v != "" {
			if *i.dst, err = strconv.Atoi(v); err != nil {
				return c, fmt.Errorf("%s must be an integer, got %q", i.name, v)
			}
		}
	}
	if v := getenv("WORKER_RETRY_BACKOFF"); v != "" {
		c.Tuning.Backoff = nil
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d <= 0 {
				return c, fmt.Errorf("WORKER_RETRY_BACKOFF must be a comma-separated list of positive durations such as 1s,5s,30s, got %q", v)
			}
			c.Tuning.Backoff = append(c.Tuning.Backoff, d)
		}
	}
	if v := getenv("WORKER_INITIAL_SYNC"); v != "" {
		if c.InitialSync, err = strconv.ParseBool(v); err != nil {
			return c, fmt.Errorf("WORKER_INITIAL_SYNC must be true or false, got %q", v)
		}
	}
	if n.tenants {
		if c.Tenants, err = tenant.Load(getenv, tenant.Need{Contact: n.contact}); err != nil {
			return c, err
		}
		c.Partitions = DefaultPartitions
	}
	if v := getenv("WORKER_PARTITIONS"); v != "" {
		if c.Partitions, err = strconv.Atoi(v); err != nil || c.Partitions < 1 || c.Partitions > worker.MaxPartitions {
			return c, fmt.Errorf("WORKER_PARTITIONS must be 1 to %d, got %q", worker.MaxPartitions, v)
		}
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if err := c.Tuning.Validate(); err != nil {
		// The lane's messages name options, not variables: say which variables they are.
		return fmt.Errorf("worker tuning (WORKER_BATCH_SIZE, WORKER_MAX_WAIT, WORKER_ACK_WAIT, WORKER_PINNED_TTL, WORKER_MAX_DELIVER, WORKER_RETRY_BACKOFF, WORKER_SHUTDOWN_TIMEOUT, WORKER_APPLY_TIMEOUT): %w", err)
	}
	if c.LookupConcurrency < 1 || c.LookupConcurrency > 64 {
		return fmt.Errorf("WORKER_LOOKUP_CONCURRENCY must be 1 to 64, got %d", c.LookupConcurrency)
	}
	if c.APIConcurrency < 1 || c.APIConcurrency > 64 {
		return fmt.Errorf("WORKER_API_CONCURRENCY must be 1 to 64, got %d", c.APIConcurrency)
	}
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// lanes returns the apply lanes: the corps spread over Partitions lanes.
func (c Config) lanes() []worker.Lane {
	return worker.PartitionLanes(c.Lane.Name, c.corpIDs(), c.Partitions)
}

func (c Config) corpIDs() []string {
	ids := make([]string, len(c.Tenants))
	for i, t := range c.Tenants {
		ids[i] = t.CorpID
	}
	return ids
}
