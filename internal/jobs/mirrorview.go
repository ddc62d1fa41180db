package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wecomsync/wecomsync/internal/db"
)

// MirrorView reads the mirror's current state (the documented wecom schema) for import
// validation, dry runs and the export merges that keep what an export does not cover.
// It only reads; every write to the mirror goes through mirror.Store.
type MirrorView struct {
	db db.DBTX
}

// NewMirrorView returns a MirrorView over d (a pool).
func NewMirrorView(d db.DBTX) *MirrorView { return &MirrorView{db: d} }

// MirrorUser is a member as the mirror holds it (the columns an import can change).
type MirrorUser struct {
	UserID      string
	Name        string
	Mobile      string
	Email       string
	Position    string
	Alias       string
	Address     string
	Telephone   string
	Gender      string
	Status      int
	Departments []int64
}

// MirrorDepartment is a department as the mirror holds it.
type MirrorDepartment struct {
	ID       int64
	Name     string
	ParentID int64
	Order    int64
	// Members is the number of members in the department (not in sub-departments).
	Members int
}

// Departments returns every department of corpID by id.
func (v *MirrorView) Departments(ctx context.Context, corpID string) (map[int64]MirrorDepartment, error) {
	rows, err := v.db.Query(ctx, `SELECT d.id, coalesce(d.name, ''), coalesce(d.parent_id, 0), coalesce(d.sort_order, 0),
		(SELECT count(*) FROM wecom.user_departments m WHERE m.corp_id = d.corp_id AND m.department_id = d.id)
		FROM wecom.departments d WHERE d.corp_id = $1`, corpID)
	if err != nil {
		return nil, fmt.Errorf("reading mirror departments of %s: %w", corpID, err)
	}
	out := map[int64]MirrorDepartment{}
	var d MirrorDepartment
	_, err = pgx.ForEachRow(rows, []any{&d.ID, &d.Name, &d.ParentID, &d.Order, &d.Members}, func() error {
		out[d.ID] = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading mirror departments of %s: %w", corpID, err)
	}
	return out, nil
}

const mirrorUserCols = `u.userid, coalesce(u.name, ''), coalesce(u.mobile, ''), coalesce(u.email, ''),
	coalesce(u.position, ''), coalesce(u.alias, ''), coalesce(u.address, ''), coalesce(u.telephone, ''),
	coalesce(u.gender::text, ''), coalesce(u.status, 0),
	coalesce(ARRAY(SELECT m.department_id FROM wecom.user_departments m WHERE m.corp_id = u.corp_id
		AND m.userid = u.userid ORDER BY m.department_id), '{}')`

func scanMirrorUsers(rows pgx.Rows, f func(MirrorUser) error) error {
	var u MirrorUser
	var status int16
	_, err := pgx.ForEachRow(rows, []any{&u.UserID, &u.Name, &u.Mobile, &u.Email, &u.Position, &u.Alias,
		&u.Address, &u.Telephone, &u.Gender, &status, &u.Departments}, func() error {
		u.Status = int(status)
		if u.Gender == "0" {
			u.Gender = ""
		}
		return f(u)
	})
	return err
}

// UsersByID returns the mirror's members among userids, keyed by lowercase userid
// (WeCom userids are case-insensitive).
func (v *MirrorView) UsersByID(ctx context.Context, corpID string, userids []string) (map[string]MirrorUser, error) {
	low := make([]string, len(userids))
	for i, u := range userids {
		low[i] = strings.ToLower(u)
	}
	rows, err := v.db.Query(ctx, `SELECT `+mirrorUserCols+` FROM wecom.users u
		WHERE u.corp_id = $1 AND lower(u.userid) = ANY($2)`, corpID, low)
	if err != nil {
		return nil, fmt.Errorf("reading mirror members of %s: %w", corpID, err)
	}
	out := make(map[string]MirrorUser, len(userids))
	err = scanMirrorUsers(rows, func(u MirrorUser) error { out[strings.ToLower(u.UserID)] = u; return nil })
	if err != nil {
		return nil, fmt.Errorf("reading mirror members of %s: %w", corpID, err)
	}
	return out, nil
}

// ContactOwners returns, for each of mobiles and emails (lowercased for emails) held by a
// mirror member, that member's userid.
func (v *MirrorView) ContactOwners(ctx context.Context, corpID string, mobiles, emails []string) (byMobile, byEmail map[string]string, err error) {
	rows, err := v.db.Query(ctx, `SELECT userid, coalesce(mobile, ''), lower(coalesce(email, '')) FROM wecom.users
		WHERE corp_id = $1 AND (mobile = ANY($2) OR lower(email) = ANY($3))`, corpID, mobiles, emails)
	if err != nil {
		return nil, nil, fmt.Errorf("reading mirror contacts of %s: %w", corpID, err)
	}
	byMobile, byEmail = map[string]string{}, map[string]string{}
	var id, m, e string
	_, err = pgx.ForEachRow(rows, []any{&id, &m, &e}, func() error {
		if m != "" {
			byMobile[m] = id
		}
		if e != "" {
			byEmail[e] = id
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading mirror contacts of %s: %w", corpID, err)
	}
	return byMobile, byEmail, nil
}

// UsersNotIn counts the mirror's members whose userid is not among keep (lowercase) and
// returns up to sample of them, and the total number of members.
func (v *MirrorView) UsersNotIn(ctx context.Context, corpID string, keep []string, sample int) (n, total int, first []string, err error) {
	err = v.db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT (lower(userid) = ANY($2))), count(*)
		FROM wecom.users WHERE corp_id = $1`, corpID, keep).Scan(&n, &total)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("counting mirror members of %s: %w", corpID, err)
	}
	rows, err := v.db.Query(ctx, `SELECT userid FROM wecom.users WHERE corp_id = $1 AND NOT (lower(userid) = ANY($2))
		ORDER BY userid LIMIT $3`, corpID, keep, sample)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("listing mirror members of %s: %w", corpID, err)
	}
	first, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, nil, fmt.Errorf("listing mirror members of %s: %w", corpID, err)
	}
	return n, total, first, nil
}
