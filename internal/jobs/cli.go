package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// CLIUsage documents the job commands of cmd/worker.
const CLIUsage = `job commands (DATABASE_URL, WECOM_* as for worker run):
  worker import users --file members.csv --mode sync|replace [--dry-run [--show N]] [--allow-deletes N]
                      [--max-delete-share 0.10] [--corp ID] [--detach]
  worker import departments --file parties.csv [--dry-run] [--corp ID] [--detach]
  worker export users|simple-users|departments [--corp ID] [--detach]
  worker export tag --id N [--corp ID] [--detach]
  worker reconcile [--corp ID] [--detach]
  worker jobs list [--limit N] | show ID [--json] | cancel ID | retry ID
Long commands run the job in the foreground and follow it to the end (--detach only
queues it for a running worker).`

// CLI holds what the job commands need; cmd/worker builds it from its configuration.
type CLI struct {
	// Runner config (Pool, Mirror, Clients, Fallback, WorkDir, Logger...).
	Config Config
	// Corps are the configured corp ids; the first is the default of --corp.
	Corps []string
	// Getenv reads WORKER_IMPORT_MAX_DELETE_SHARE.
	Getenv func(string) string
	// Interval is how often a followed job's progress is read. Default 500ms.
	Interval time.Duration
}

// Run executes one job command; args start after the program name (e.g. ["import",
// "users", "--file", "x.csv", "--mode", "sync"]). It returns an error for a failed
// command (validation problems, a refused guard, a failed or cancelled job).
func (c *CLI) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(CLIUsage)
	}
	if c.Interval == 0 {
		c.Interval = 500 * time.Millisecond
	}
	if c.Getenv == nil {
		c.Getenv = func(string) string { return "" }
	}
	switch args[0] {
	case "import":
		if len(args) < 2 {
			return errors.New("worker import takes users or departments\n" + CLIUsage)
		}
		return c.runImport(ctx, args[1], args[2:], stdout, stderr)
	case "export":
		if len(args) < 2 {
			return errors.New("worker export takes users, simple-users, departments or tag\n" + CLIUsage)
		}
		return c.runExport(ctx, args[1], args[2:], stdout, stderr)
	case "reconcile":
		fs, corp, detach := c.flags("reconcile", stderr)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return c.enqueueAndFollow(ctx, *corp, *detach, stdout, func(r *Runner) (int64, error) { return r.EnqueueReconcile(ctx, *corp) })
	case "jobs":
		return c.runJobs(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown job command %q\n%s", args[0], CLIUsage)
}

func (c *CLI) flags(name string, stderr io.Writer) (*flag.FlagSet, *string, *bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := ""
	if len(c.Corps) > 0 {
		def = c.Corps[0]
	}
	return fs, fs.String("corp", def, "corp id"), fs.Bool("detach", false, "only queue the job")
}

func (c *CLI) runner() (*Runner, error) { return New(c.Config) }

func (c *CLI) runImport(ctx context.Context, target string, args []string, stdout, stderr io.Writer) error {
	fs, corp, detach := c.flags("import "+target, stderr)
	file := fs.String("file", "", "the CSV file")
	mode := fs.String("mode", "", "sync or replace (members)")
	dry := fs.Bool("dry-run", false, "only show what would change")
	show := fs.Int("show", 20, "entries of each kind the plan lists")
	allow := fs.Int("allow-deletes", -1, "allow a replace to delete up to N members")
	share := DefaultMaxDeleteShare
	if v := c.Getenv("WORKER_IMPORT_MAX_DELETE_SHARE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Errorf("WORKER_IMPORT_MAX_DELETE_SHARE must be a share between 0 and 1, got %q", v)
		}
		share = f
	}
	maxShare := fs.Float64("max-delete-share", share, "share of members a replace may delete without --allow-deletes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("--file is required")
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", *file, err)
	}
	r, err := c.runner()
	if err != nil {
		return err
	}
	switch target {
	case TargetUsers:
		if *mode != ModeSync && *mode != ModeReplace {
			return fmt.Errorf("--mode must be sync or replace, got %q", *mode)
		}
		f, probs, err := ParseUsersCSV(data)
		if err != nil {
			return fmt.Errorf("reading %s: %w", *file, err)
		}
		if len(probs) == 0 {
			if probs, err = ValidateUsers(ctx, r.view, *corp, f, UserCheckOptions{}); err != nil {
				return err
			}
		}
		if len(probs) > 0 {
			return reportProblems(stderr, *file, probs)
		}
		plan, err := PlanUsers(ctx, r.view, *corp, *mode, f, *show)
		if err != nil {
			return err
		}
		printPlan(stdout, plan, "members")
		if err := (DeletionGuard{MaxShare: *maxShare, AllowDeletes: *allow}).Check(plan); err != nil {
			return err
		}
		if *dry {
			return nil
		}
		return c.enqueueAndFollow(ctx, *corp, *detach, stdout, func(r *Runner) (int64, error) { return r.EnqueueUsers(ctx, *corp, *mode, f) })
	case TargetDepartments:
		rows, probs, err := ParseDepartmentsCSV(data)
		if err != nil {
			return fmt.Errorf("reading %s: %w", *file, err)
		}
		probs = append(probs, ValidateDepartments(rows)...)
		if len(probs) > 0 {
			return reportProblems(stderr, *file, probs)
		}
		plan, err := PlanDepartments(ctx, r.view, *corp, rows, *show)
		if err != nil {
			return err
		}
		printPlan(stdout, plan, "departments")
		if *dry {
			return nil
		}
		return c.enqueueAndFollow(ctx, *corp, *detach, stdout, func(r *Runner) (int64, error) { return r.EnqueueDepartments(ctx, *corp, rows) })
	}
	return fmt.Errorf("worker import takes users or departments, got %q", target)
}

func reportProblems(w io.Writer, file string, probs []Problem) error {
	for _, p := range probs {
		fmt.Fprintf(w, "%s: %s\n", file, p)
	}
	return &ValidationError{Problems: probs}
}

func printPlan(w io.Writer, p *Plan, what string) {
	fmt.Fprintf(w, "plan (%s, diffed against the mirror of %d %s): create %d, update %d, unchanged %d, delete %d\n",
		p.Mode, p.Members, what, p.Create, p.Update, p.Same, p.Delete)
	for _, s := range p.Creates {
		fmt.Fprintf(w, "  + %s\n", s)
	}
	for _, s := range p.Updates {
		fmt.Fprintf(w, "  ~ %s\n", s)
	}
	for _, s := range p.Deletes {
		fmt.Fprintf(w, "  - %s\n", s)
	}
	for _, s := range p.Kept {
		fmt.Fprintf(w, "  = %s (not in the file, kept by WeCom while it has members)\n", s)
	}
}

func (c *CLI) runExport(ctx context.Context, what string, args []string, stdout, stderr io.Writer) error {
	fs, corp, detach := c.flags("export "+what, stderr)
	id := fs.Int("id", 0, "tag id (export tag)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return c.enqueueAndFollow(ctx, *corp, *detach, stdout, func(r *Runner) (int64, error) { return r.EnqueueExport(ctx, *corp, what, *id) })
}

// enqueueAndFollow queues a job and, unless detached, works it in this process (and any
// running worker) while printing progress until it ends.
func (c *CLI) enqueueAndFollow(ctx context.Context, corp string, detach bool, stdout io.Writer, enqueue func(*Runner) (int64, error)) error {
	if corp == "" {
		return errors.New("--corp is required (no corp configured)")
	}
	r, err := c.runner()
	if err != nil {
		return err
	}
	id, err := enqueue(r)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "queued job %d\n", id)
	if detach {
		return nil
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = r.Stop(sctx)
	}()
	p := newProgress(stdout)
	j, err := r.Follow(ctx, id, c.Interval, p.update)
	p.end()
	if err != nil {
		return err
	}
	printJob(stdout, j, false)
	if j.State != "completed" {
		msg := j.Error
		if msg == "" && len(j.Errors) > 0 {
			msg = j.Errors[len(j.Errors)-1]
		}
		return fmt.Errorf("job %d %s: %s", id, j.State, msg)
	}
	return nil
}

func (c *CLI) runJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("worker jobs takes list, show, cancel or retry\n" + CLIUsage)
	}
	r, err := c.runner()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("jobs "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	limit := fs.Int("limit", 20, "jobs to list")
	asJSON := fs.Bool("json", false, "print JSON")
	// Flags may come before or after the id.
	var pos []string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
		if len(rest) > 0 {
			pos, rest = append(pos, rest[0]), rest[1:]
		}
	}
	if args[0] == "list" {
		list, err := r.List(ctx, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(list)
		}
		fmt.Fprintf(stdout, "%-8s %-16s %-14s %-10s %-28s %s\n", "ID", "KIND", "CORP", "STATE", "PHASE", "CREATED")
		for _, j := range list {
			fmt.Fprintf(stdout, "%-8d %-16s %-14s %-10s %-28s %s\n", j.ID, j.Kind, j.CorpID, j.State,
				progressText(j), j.CreatedAt.UTC().Format(time.RFC3339))
		}
		return nil
	}
	if len(pos) != 1 {
		return fmt.Errorf("worker jobs %s takes one job id", args[0])
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("job id must be a number, got %q", pos[0])
	}
	var j *JobInfo
	switch args[0] {
	case "show":
		j, err = r.Show(ctx, id)
	case "cancel":
		j, err = r.Cancel(ctx, id)
	case "retry":
		j, err = r.Retry(ctx, id)
	default:
		return fmt.Errorf("worker jobs takes list, show, cancel or retry, got %q", args[0])
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(j)
	}
	printJob(stdout, j, args[0] == "show")
	return nil
}

func progressText(j *JobInfo) string {
	if j.Total > 0 && !j.Finished() {
		return fmt.Sprintf("%s %d/%d", j.Phase, j.Done, j.Total)
	}
	return j.Phase
}

func printJob(w io.Writer, j *JobInfo, details bool) {
	fmt.Fprintf(w, "job %d %s corp=%s state=%s phase=%s attempt=%d\n", j.ID, j.Kind, j.CorpID, j.State, progressText(j), j.Attempt)
	if len(j.Summary) > 0 && string(j.Summary) != "null" {
		fmt.Fprintf(w, "  summary: %s\n", j.Summary)
	}
	if j.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", j.Error)
	}
	if !details {
		return
	}
	fmt.Fprintf(w, "  args: %s\n", j.Args)
	for _, e := range j.Errors {
		fmt.Fprintf(w, "  attempt error: %s\n", e)
	}
	failed := 0
	for _, x := range j.Results {
		if x.ErrCode != 0 {
			failed++
		}
	}
	if len(j.Results) > 0 {
		fmt.Fprintf(w, "  results: %d rows, %d failed\n", len(j.Results), failed)
	}
	for _, x := range j.Results {
		if x.ErrCode == 0 {
			continue
		}
		key := x.UserID
		if key == "" {
			key = strconv.FormatInt(x.PartyID, 10)
		}
		fmt.Fprintf(w, "    %s: errcode %d %s\n", key, x.ErrCode, x.ErrMsg)
	}
}

// progress prints a job's progress: a redrawn bar on a terminal, a line per change
// otherwise.
type progress struct {
	w    io.Writer
	tty  bool
	last string
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(j *JobInfo) {
	line := fmt.Sprintf("job %d: %s %s", j.ID, j.State, j.Phase)
	if j.Total > 0 && !j.Finished() {
		pct := float64(j.Done) / float64(j.Total)
		if p.tty {
			const width = 30
			n := int(pct * width)
			line += fmt.Sprintf(" [%s%s] %3.0f%%", strings.Repeat("#", n), strings.Repeat(".", width-n), 100*pct)
		} else {
			line += fmt.Sprintf(" %d/%d", j.Done, j.Total)
		}
	}
	if line == p.last {
		return
	}
	p.last = line
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) end() {
	if p.tty && p.last != "" {
		fmt.Fprintln(p.w)
	}
}
