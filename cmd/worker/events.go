package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/mirror"
)

// runDead is `worker events dead [--corp X] [--limit N]`: the dead letters not yet
// replayed, oldest first, of one corp or of every configured corp.
func runDead(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker events dead", flag.ContinueOnError)
	fs.SetOutput(stderr)
	corp := fs.String("corp", "", "only this corp (default: every configured corp)")
	limit := fs.Int("limit", 100, "most dead letters listed per corp")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *limit < 1 {
		return errors.New("worker events dead takes [--corp CORP_ID] [--limit N] with N at least 1")
	}
	cfg, corps, err := eventsConfig(getenv, *corp)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := mirror.NewStore(pool, nil, newLogger(stderr, cfg.LogLevel), mirror.Options{})
	defer store.Close()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCORP\tSTREAM_SEQ\tAT\tSUBJECT\tREASON")
	for _, c := range corps {
		dls, err := store.DeadLetters(ctx, c, *limit)
		if err != nil {
			return err
		}
		for _, d := range dls {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.CorpID, d.StreamSeq, d.At.UTC().Format(time.RFC3339), d.Subject, d.Reason)
		}
	}
	return tw.Flush()
}

// eventsConfig loads the configuration of the events subcommands: tenants are needed to
// know the corps, not their secrets, unless a replay needs lookups (then runReplay loads
// them itself).
func eventsConfig(getenv func(string) string, corp string) (Config, []string, error) {
	cfg, err := loadConfig(getenv, need{tenants: corp == ""})
	if err != nil {
		return cfg, nil, fmt.Errorf("configuration: %w", err)
	}
	if corp != "" {
		return cfg, []string{corp}, nil
	}
	return cfg, cfg.corpIDs(), nil
}

// runReplay is `worker events replay ID | --all [--corp X]`: each dead letter is applied
// again through the mirror (as an item outside the lane, so only its event id guards
// against applying it twice) and marked replayed. A dead letter that fails again is
// dead-lettered anew by the mirror (the new id is printed) and the old one marked
// replayed, so the list shows each failure once.
func runReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker events replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "replay every dead letter not yet replayed")
	corp := fs.String("corp", "", "with --all: only this corp")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var id int64
	switch {
	case *all && fs.NArg() == 0:
	case !*all && fs.NArg() == 1 && *corp == "":
		var err error
		if id, err = strconv.ParseInt(fs.Arg(0), 10, 64); err != nil || id < 1 {
			return fmt.Errorf("worker events replay takes a dead letter id (a positive integer), got %q", fs.Arg(0))
		}
	default:
		return errors.New("worker events replay takes one dead letter ID, or --all [--corp CORP_ID]")
	}
	// Replaying may need lookups (minimal events), hence the contacts-sync secrets.
	cfg, err := loadConfig(getenv, need{tenants: true, contact: true})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)
	pool, err := openDB(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := prometheus.NewRegistry()
	wc, err := newWeCom(cfg, pool, reg, log)
	if err != nil {
		return err
	}
	store := mirror.NewStore(pool, wc, log, mirror.Options{Metrics: mirror.NewMetrics(reg), LookupConcurrency: cfg.LookupConcurrency})
	defer store.Close()

	var dls []mirror.DeadLetter
	if *all {
		corps := cfg.corpIDs()
		if *corp != "" {
			corps = []string{*corp}
		}
		for _, c := range corps {
			// Page through: replayed ones drop out of the list, so each call returns new ones.
			page, err := store.DeadLetters(ctx, c, 100000)
			if err != nil {
				return err
			}
			dls = append(dls, page...)
		}
		slices.SortFunc(dls, func(a, b mirror.DeadLetter) int { return int(a.ID - b.ID) })
	} else {
		d, err := store.DeadLetter(ctx, id)
		if err != nil {
			return err
		}
		if d.ReplayedAt != nil {
			return fmt.Errorf("dead letter %d was already replayed at %s", id, d.ReplayedAt.UTC().Format(time.RFC3339))
		}
		dls = []mirror.DeadLetter{d}
	}
	failed := 0
	for _, d := range dls {
		res, err := replay(ctx, store, d)
		if err != nil {
			return fmt.Errorf("replaying dead letter %d: %w", d.ID, err)
		}
		if err := store.MarkReplayed(ctx, d.ID); err != nil {
			return err
		}
		if res.Status == mirror.Poison {
			failed++
			fmt.Fprintf(stdout, "%d\tfailed again: %s (new dead letter %d)\n", d.ID, res.Reason, res.DeadLetterID)
			continue
		}
		fmt.Fprintf(stdout, "%d\t%s\n", d.ID, res.Status)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d dead letters failed again", failed, len(dls))
	}
	return nil
}

// replay applies one dead letter outside the lane (StreamSeq 0).
func replay(ctx context.Context, store *mirror.Store, d mirror.DeadLetter) (mirror.Result, error) {
	item := mirror.Item{Subject: d.Subject, Raw: d.Payload}
	var msg event.Message
	if err := json.Unmarshal(d.Payload, &msg); err == nil && msg.ID != "" {
		item.Msg = &msg
	}
	res, err := store.ApplyBatch(ctx, d.CorpID, []mirror.Item{item})
	if err != nil {
		return mirror.Result{}, err
	}
	if len(res) != 1 {
		return mirror.Result{}, fmt.Errorf("the mirror returned %d results for one item", len(res))
	}
	return res[0], nil
}
