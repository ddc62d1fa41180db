// Command demo runs the whole wecomsync pipeline on one machine against the WeCom emulator:
// NATS JetStream (embedded unless NATS_URL is set), Postgres (DATABASE_URL, or a throwaway
// cluster from the installed initdb/pg_ctl), the emulator seeded with an org, the callback
// receiver and the worker (migrations, initial sync), then a steady trickle of console
// edits, printing each change as it lands in the mirror with its latency from the edit.
// Each component runs as its own process, built next to this binary by `make demo`.
// Ctrl-C stops everything.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/pgcluster"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type config struct {
	seedUsers int
	rate      float64
	duration  time.Duration
	binDir    string
	dataDir   string
	natsURL   string
	dbURL     string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.seedUsers, "seed-users", 5000, "members in the emulated org")
	fs.Float64Var(&c.rate, "rate", 2, "console edits per second")
	fs.DurationVar(&c.duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	fs.StringVar(&c.binDir, "bin", "", "directory holding the callback, worker and wecom-emulator binaries (default: this binary's)")
	fs.StringVar(&c.dataDir, "data", ".demo", "directory for logs and the embedded NATS store")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.seedUsers < 10 || c.rate <= 0 || c.rate > 1000 {
		return c, errors.New("-seed-users must be at least 10 and -rate between 0 and 1000")
	}
	if c.binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("finding the component binaries: %w", err)
		}
		c.binDir = filepath.Dir(exe)
	}
	c.natsURL = getenv("NATS_URL")
	c.dbURL = getenv("DATABASE_URL")
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	logDir := filepath.Join(cfg.dataDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	out := &printer{w: stdout}

	// NATS: the configured server, or an embedded JetStream server.
	natsURL := cfg.natsURL
	if natsURL == "" {
		ns, err := startNATS(filepath.Join(cfg.dataDir, "nats"))
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL = ns.ClientURL()
		out.say("NATS JetStream (embedded) at %s", natsURL)
	} else {
		out.say("NATS at %s", natsURL)
	}

	// Postgres: the configured server, or a throwaway cluster.
	dbURL := cfg.dbURL
	if dbURL == "" {
		out.say("starting a throwaway Postgres cluster (initdb, pg_ctl)…")
		cl, err := pgcluster.Start("")
		if err != nil {
			return fmt.Errorf("no DATABASE_URL and no throwaway Postgres: %w", err)
		}
		defer cl.Stop()
		dbURL = cl.URL
		out.say("Postgres (throwaway) at %s", dbURL)
	} else {
		out.say("Postgres at %s", redactURL(dbURL))
	}

	corp := "wwdemo" + randHex(5)
	token, aesKey := "demo"+randHex(6), crypto.NewKey()
	contactSecret, consoleSecret := "contact-"+randHex(8), "console-"+randHex(8)

	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	cb, err := startProc(ctx, filepath.Join(cfg.binDir, "callback"), nil, []string{
		"WECOM_CORP_ID=" + corp, "WECOM_CALLBACK_TOKEN=" + token, "WECOM_CALLBACK_AES_KEY=" + aesKey,
		"NATS_URL=" + natsURL, "CALLBACK_ADDR=127.0.0.1:0",
	}, filepath.Join(logDir, "callback.log"), "callback ready addr=")
	if err != nil {
		return err
	}
	procs = append(procs, cb)
	out.say("callback receiver at http://%s/callback (logs: %s)", cb.addr, filepath.Join(logDir, "callback.log"))
	if err := waitReady(ctx, "http://"+cb.addr+"/readyz"); err != nil {
		return err
	}

	emu, err := startProc(ctx, filepath.Join(cfg.binDir, "wecom-emulator"), []string{
		"-addr", "127.0.0.1:0", "-corp-id", corp, "-contact-secret", contactSecret, "-console-secret", consoleSecret,
		"-callback-url", "http://" + cb.addr + "/callback", "-callback-token", token, "-callback-aes-key", aesKey,
		"-seed-users", fmt.Sprint(cfg.seedUsers),
	}, nil, filepath.Join(logDir, "wecom-emulator.log"), "wecom-emulator ready addr=")
	if err != nil {
		return err
	}
	procs = append(procs, emu)
	out.say("WeCom emulator at http://%s with %d members (corp %s)", emu.addr, cfg.seedUsers, corp)

	workerEnv := []string{
		"DATABASE_URL=" + dbURL, "NATS_URL=" + natsURL, "WECOM_CORP_ID=" + corp, "WECOM_CONTACT_SECRET=" + contactSecret,
		"WECOM_API_URL=http://" + emu.addr, "WORKER_ADMIN_ADDR=127.0.0.1:0", "WORKER_RECONCILE_CRON=off",
		"WORKER_JOBS_DIR=" + filepath.Join(cfg.dataDir, "jobs"),
	}
	if err := runOnce(ctx, filepath.Join(cfg.binDir, "worker"), []string{"migrate", "up"}, workerEnv, filepath.Join(logDir, "migrate.log")); err != nil {
		return err
	}
	out.say("schema migrated; starting the worker (initial sync of %d members through the API)…", cfg.seedUsers)
	syncStart := time.Now()
	wk, err := startProc(ctx, filepath.Join(cfg.binDir, "worker"), []string{"run"}, workerEnv,
		filepath.Join(logDir, "worker.log"), "worker ready admin=")
	if err != nil {
		return err
	}
	procs = append(procs, wk)
	out.say("worker ready after %.1f s of initial sync; status page http://%s/ (logs: %s)",
		time.Since(syncStart).Seconds(), wk.addr, filepath.Join(logDir, "worker.log"))
	out.say("look: psql '%s' -c 'SELECT userid, name, position FROM wecom.users LIMIT 5'", redactURL(dbURL))
	out.say("look: nats --server %s sub 'wecom.changes.>'", natsURL)

	nc, err := nats.Connect(natsURL, nats.Name("wecomsync-demo"))
	if err != nil {
		return fmt.Errorf("connecting to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, callback.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"wecom.events." + corp + ".>"}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("consuming %s: %w", callback.StreamName, err)
	}

	ed, err := newEditor(ctx, "http://"+emu.addr, corp, consoleSecret)
	if err != nil {
		return err
	}
	out.say("making %.1f console edits per second; each line is a change landing in the mirror (Ctrl-C to stop)", cfg.rate)
	out.say("%-10s %-10s %-18s %-22s %s", "stored", "mirrored", "change", "key", "what")

	// Events as JetStream stores them: remember when each edit's callback was stored.
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var msg event.Message
		if err := json.Unmarshal(m.Data(), &msg); err != nil {
			out.say("undecodable message on %s: %v", m.Subject(), err)
			return
		}
		key, what := describe(&msg)
		ed.stored(msg.ChangeType, key, what)
	})
	if err != nil {
		return err
	}
	defer cc.Stop()

	// Changes as the mirror commits them (published by the worker's outbox relay).
	changes, err := js.OrderedConsumer(ctx, mirror.ChangesStreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{mirror.ChangesSubjectPrefix + corp + ".>"}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("consuming %s: %w", mirror.ChangesStreamName, err)
	}
	ch, err := changes.Consume(func(m jetstream.Msg) {
		var c struct {
			Entity string `json:"entity"`
			Key    string `json:"key"`
			Op     string `json:"op"`
			Source string `json:"source"`
		}
		if err := json.Unmarshal(m.Data(), &c); err != nil {
			out.say("undecodable change on %s: %v", m.Subject(), err)
			return
		}
		stored, mirrored, what := ed.mirrored(c.Entity, c.Key, c.Op)
		out.say("%-10s %-10s %-18s %-22s %s", stored, mirrored, c.Entity+" "+c.Op, c.Key, what)
	})
	if err != nil {
		return err
	}
	defer ch.Stop()

	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			out.say("stopping: %d edits made", ed.count)
			return nil
		case <-tick.C:
			if err := ed.edit(ctx); err != nil && ctx.Err() == nil {
				out.say("edit failed: %v", err)
			}
		}
	}
}

// runOnce runs bin to completion (e.g. `worker migrate up`), with its output in logPath.
func runOnce(ctx context.Context, bin string, args, env []string, logPath string) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not found: build the binaries first (make demo does)", bin)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w; see %s", filepath.Base(bin), strings.Join(args, " "), err, logPath)
	}
	return nil
}

// redactURL hides a password in a connection URL.
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		if _, has := p.User.Password(); has {
			p.User = url.UserPassword(p.User.Username(), "xxxxx")
			return p.String()
		}
	}
	return u
}

// printer serialises output lines from the consumer and the main loop.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, time.Now().Format("15:04:05.000")+"  "+format+"\n", args...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func startNATS(storeDir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, fmt.Errorf("starting embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("embedded NATS did not start within 10s")
	}
	return ns, nil
}

// proc is a component running as a child process.
type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startProc starts bin and waits for its ready line (prefix, then the address), sending
// stderr to logPath. The process gets SIGTERM when stopped.
func startProc(ctx context.Context, bin string, args, env []string, logPath, prefix string) (*proc, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found: build the binaries first (make demo does)", bin)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", filepath.Base(bin), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				select {
				case ready <- strings.Fields(rest)[0]:
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	select {
	case p.addr = <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready; see %s", filepath.Base(bin), logPath)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s was not ready within 60s; see %s", filepath.Base(bin), logPath)
	}
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not turn ready within 30s", url)
}
