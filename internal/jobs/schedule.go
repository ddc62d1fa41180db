package jobs

import (
	"fmt"
	"strings"

	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"
)

// DefaultReconcileCron is the default WORKER_RECONCILE_CRON: nightly at 03:00.
const DefaultReconcileCron = "0 3 * * *"

// ImportSchedule is a scheduled import: a cron expression, the file (path or http(s)
// URL), the target and mode.
type ImportSchedule struct {
	Cron   string
	Source string
	Target string // TargetUsers or TargetDepartments
	Mode   string // ModeSync or ModeReplace (users)
	// MaxDeleteShare is the deletion guard of a scheduled replace (0 = default).
	MaxDeleteShare float64
}

// Schedules are the periodic jobs of `worker run`.
type Schedules struct {
	// Corps are reconciled on Reconcile (a standard 5-field cron expression; "" = never).
	Corps     []string
	Reconcile string
	// ReconcileOnStart also reconciles when the leader worker starts
	// (WORKER_RECONCILE_ON_START=true).
	ReconcileOnStart bool
	// Imports run for ImportCorp.
	ImportCorp string
	Imports    []ImportSchedule
}

// ParseImportSchedules parses WORKER_IMPORT_SCHEDULES: entries separated by ";" or new
// lines, each "CRON|SOURCE|TARGET|MODE", e.g.
// "0 6 * * *|https://hr.example/members.csv|users|sync". TARGET is users or departments;
// MODE is sync or replace (departments are always replace).
func ParseImportSchedules(s string) ([]ImportSchedule, error) {
	var out []ImportSchedule
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		f := strings.Split(e, "|")
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("import schedule %q must be CRON|SOURCE|TARGET|MODE", e)
		}
		is := ImportSchedule{Cron: strings.TrimSpace(f[0]), Source: strings.TrimSpace(f[1]), Target: strings.TrimSpace(f[2]), Mode: ModeSync}
		if len(f) == 4 {
			is.Mode = strings.TrimSpace(f[3])
		}
		if is.Target == TargetDepartments {
			is.Mode = ModeReplace
		}
		if is.Target != TargetUsers && is.Target != TargetDepartments {
			return nil, fmt.Errorf("import schedule %q: target must be users or departments", e)
		}
		if is.Mode != ModeSync && is.Mode != ModeReplace {
			return nil, fmt.Errorf("import schedule %q: mode must be sync or replace", e)
		}
		if _, err := cron.ParseStandard(is.Cron); err != nil {
			return nil, fmt.Errorf("import schedule %q: bad cron expression: %w", e, err)
		}
		out = append(out, is)
	}
	return out, nil
}

// Validate checks the cron expressions.
func (s *Schedules) Validate() error {
	if s.Reconcile != "" {
		if _, err := cron.ParseStandard(s.Reconcile); err != nil {
			return fmt.Errorf("WORKER_RECONCILE_CRON %q is not a cron expression: %w", s.Reconcile, err)
		}
	}
	for _, is := range s.Imports {
		if _, err := cron.ParseStandard(is.Cron); err != nil {
			return fmt.Errorf("import schedule cron %q: %w", is.Cron, err)
		}
	}
	return nil
}

// periodicJobs builds River's periodic jobs; cron.Schedule implements
// river.PeriodicSchedule (Next). Expressions were validated by Validate.
func (s *Schedules) periodicJobs() []*river.PeriodicJob {
	var out []*river.PeriodicJob
	if s.Reconcile != "" {
		sched, err := cron.ParseStandard(s.Reconcile)
		if err == nil {
			for _, corp := range s.Corps {
				out = append(out, river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) {
					return ReconcileArgs{CorpID: corp}, nil
				}, &river.PeriodicJobOpts{ID: "reconcile:" + corp, RunOnStart: s.ReconcileOnStart}))
			}
		}
	}
	for i, is := range s.Imports {
		sched, err := cron.ParseStandard(is.Cron)
		if err != nil {
			continue
		}
		out = append(out, river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) {
			return ImportArgs{CorpID: s.ImportCorp, Target: is.Target, Mode: is.Mode, Source: is.Source,
				MaxDeleteShare: is.MaxDeleteShare}, nil
		}, &river.PeriodicJobOpts{ID: fmt.Sprintf("import:%d:%s", i, is.Source)}))
	}
	return out
}

// SchedulesFromEnv reads WORKER_RECONCILE_CRON (default DefaultReconcileCron; "off"
// disables it) and WORKER_IMPORT_SCHEDULES (see ParseImportSchedules; imports run for
// the first of corps) for the periodic jobs of `worker run`.
func SchedulesFromEnv(getenv func(string) string, corps []string) (*Schedules, error) {
	s := &Schedules{Corps: corps, Reconcile: DefaultReconcileCron}
	if v := strings.TrimSpace(getenv("WORKER_RECONCILE_CRON")); v == "off" || v == "none" {
		s.Reconcile = ""
	} else if v != "" {
		s.Reconcile = v
	}
	s.ReconcileOnStart = getenv("WORKER_RECONCILE_ON_START") == "true"
	imps, err := ParseImportSchedules(getenv("WORKER_IMPORT_SCHEDULES"))
	if err != nil {
		return nil, fmt.Errorf("WORKER_IMPORT_SCHEDULES: %w", err)
	}
	s.Imports = imps
	if len(corps) > 0 {
		s.ImportCorp = corps[0]
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Count returns how many periodic jobs the schedules install.
func (s *Schedules) Count() int { return len(s.periodicJobs()) }
