package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// errExportFormat: an export file is not shaped as documented (API-FACTS §5.3).
var errExportFormat = errors.New("unexpected export file format")

// fileSource is a mirror.SyncSource over downloaded export blocks, decrypted and parsed
// as a stream (one entity in memory at a time). Entities an export does not cover are
// read back from the mirror with every field unknown, so the merge keeps them as they are.
type fileSource struct {
	r      *Runner
	corpID string
	dir    string
	what   string
	tagID  int
	source string
	parts  map[string]*exportPart
	cl     WeCom
	// watermark is the change-log position recorded before the export was submitted.
	watermark     int64
	haveWatermark bool
}

func (r *Runner) fileSource(corpID, dir, what string, tagID int, source string, parts []*exportPart, cl WeCom) *fileSource {
	s := &fileSource{r: r, corpID: corpID, dir: dir, what: what, tagID: tagID, source: source, parts: map[string]*exportPart{}, cl: cl}
	for _, p := range parts {
		s.parts[p.Kind] = p
	}
	return s
}

// SourceName names the merge in the change log.
func (s *fileSource) SourceName() string { return s.source }

// SnapshotWatermark is the change-log position before the export was submitted, so the
// merge does not undo callbacks applied since (mirror.Store.Sync).
func (s *fileSource) SnapshotWatermark() (int64, bool) { return s.watermark, s.haveWatermark }

// each streams the array elements named array of every block of part p to f.
func (s *fileSource) each(ctx context.Context, p *exportPart, array string, f func(dec *json.Decoder) error, top func(key string, dec *json.Decoder) error) error {
	for i := range p.Blocks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.parseBlock(p, i, array, f, top); err != nil {
			return fmt.Errorf("reading block %d of %s export: %w", i, p.Kind, err)
		}
	}
	return nil
}

func (s *fileSource) parseBlock(p *exportPart, i int, array string, f func(dec *json.Decoder) error, top func(key string, dec *json.Decoder) error) error {
	fh, err := os.Open(blockPath(s.dir, p, i))
	if err != nil {
		return err
	}
	defer fh.Close()
	plain, err := wecom.NewExportDecrypter(bufio.NewReaderSize(fh, 256<<10), p.Key)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bufio.NewReaderSize(plain, 256<<10))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		switch {
		case key == array:
			if err := expectDelim(dec, '['); err != nil {
				return err
			}
			for dec.More() {
				if err := f(dec); err != nil {
					return err
				}
			}
			if err := expectDelim(dec, ']'); err != nil {
				return err
			}
		case top != nil:
			if err := top(key, dec); err != nil {
				return err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	// Anything after the object (other than the padding the decrypter removed) is wrong.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON object", errExportFormat)
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: truncated JSON", errExportFormat)
		}
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("%w: expected %q, got %v", errExportFormat, want, t)
	}
	return nil
}

// Departments streams the department export, or the mirror's departments unchanged.
func (s *fileSource) Departments(ctx context.Context) iter.Seq2[*mirror.Department, error] {
	return func(yield func(*mirror.Department, error) bool) {
		p := s.parts[wecom.ExportDepartment]
		if p == nil {
			s.passDepartments(ctx, yield)
			return
		}
		stop := errors.New("stop")
		n := 0
		err := s.each(ctx, p, "department", func(dec *json.Decoder) error {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			var d struct {
				ID       *int64  `json:"id"`
				Name     *string `json:"name"`
				NameEn   *string `json:"name_en"`
				ParentID *int64  `json:"parentid"`
				Order    *int64  `json:"order"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				return err
			}
			if d.ID == nil {
				return fmt.Errorf("%w: department without id", errExportFormat)
			}
			md := &mirror.Department{ID: *d.ID, Raw: raw}
			setStr(&md.Unknown, mirror.FieldName, d.Name, &md.Name)
			setStr(&md.Unknown, mirror.FieldNameEn, d.NameEn, &md.NameEn)
			setNum(&md.Unknown, mirror.FieldParentID, d.ParentID, &md.ParentID)
			setNum(&md.Unknown, mirror.FieldOrder, d.Order, &md.Order)
			n++
			if !yield(md, nil) {
				return stop
			}
			return nil
		}, nil)
		s.r.metrics.ExportRows.WithLabelValues(p.Kind).Add(float64(n))
		if err != nil && !errors.Is(err, stop) {
			yield(nil, err)
		}
	}
}

// exportUser is a member of a user or simple_user export (user/list's shape). Pointer
// fields are nil when the export does not carry them.
type exportUser struct {
	UserID         string          `json:"userid"`
	Name           *string         `json:"name"`
	Alias          *string         `json:"alias"`
	Position       *string         `json:"position"`
	Mobile         *string         `json:"mobile"`
	Email          *string         `json:"email"`
	BizMail        *string         `json:"biz_mail"`
	Gender         *json.Number    `json:"gender"`
	Status         *int64          `json:"status"`
	MainDepartment *int64          `json:"main_department"`
	Avatar         *string         `json:"avatar"`
	Telephone      *string         `json:"telephone"`
	Address        *string         `json:"address"`
	OpenUserID     *string         `json:"open_userid"`
	ExtAttr        json.RawMessage `json:"extattr"`
	Department     []int64         `json:"department"`
	Order          []int64         `json:"order"`
	IsLeaderInDept []int           `json:"is_leader_in_dept"`
}

func setStr(unknown *[]string, field string, p *string, dst *string) {
	if p == nil {
		*unknown = append(*unknown, field)
		return
	}
	*dst = *p
}

func setNum[T int | int64](unknown *[]string, field string, p *int64, dst *T) {
	if p == nil {
		*unknown = append(*unknown, field)
		return
	}
	*dst = T(*p)
}

func (g *exportUser) toMirror(raw json.RawMessage) *mirror.User {
	u := &mirror.User{UserID: g.UserID, Raw: raw}
	setStr(&u.Unknown, mirror.FieldName, g.Name, &u.Name)
	setStr(&u.Unknown, mirror.FieldAlias, g.Alias, &u.Alias)
	setStr(&u.Unknown, mirror.FieldPosition, g.Position, &u.Position)
	setStr(&u.Unknown, mirror.FieldMobile, g.Mobile, &u.Mobile)
	setStr(&u.Unknown, mirror.FieldEmail, g.Email, &u.Email)
	setStr(&u.Unknown, mirror.FieldBizMail, g.BizMail, &u.BizMail)
	setStr(&u.Unknown, mirror.FieldAvatar, g.Avatar, &u.Avatar)
	setStr(&u.Unknown, mirror.FieldTelephone, g.Telephone, &u.Telephone)
	setStr(&u.Unknown, mirror.FieldAddress, g.Address, &u.Address)
	setStr(&u.Unknown, mirror.FieldOpenUserID, g.OpenUserID, &u.OpenUserID)
	setNum(&u.Unknown, mirror.FieldStatus, g.Status, &u.Status)
	setNum(&u.Unknown, mirror.FieldMainDepartment, g.MainDepartment, &u.MainDepartment)
	if g.Gender == nil {
		u.Unknown = append(u.Unknown, mirror.FieldGender)
	} else if n, err := g.Gender.Int64(); err == nil {
		u.Gender = int(n)
	}
	if len(g.ExtAttr) == 0 || string(g.ExtAttr) == "null" {
		u.Unknown = append(u.Unknown, mirror.FieldExtAttr)
	} else {
		u.ExtAttr = g.ExtAttr
	}
	if len(g.Order) != len(g.Department) {
		u.Unknown = append(u.Unknown, mirror.FieldOrder)
	}
	if len(g.IsLeaderInDept) != len(g.Department) {
		u.Unknown = append(u.Unknown, mirror.FieldIsLeader)
	}
	u.Departments = make([]mirror.Membership, len(g.Department))
	for i, d := range g.Department {
		m := mirror.Membership{DepartmentID: d}
		if i < len(g.Order) && len(g.Order) == len(g.Department) {
			m.Order = g.Order[i]
		}
		if i < len(g.IsLeaderInDept) && len(g.IsLeaderInDept) == len(g.Department) {
			m.IsLeader = g.IsLeaderInDept[i] == 1
		}
		u.Departments[i] = m
	}
	return u
}

// Users streams the member export, or the mirror's members unchanged.
func (s *fileSource) Users(ctx context.Context) iter.Seq2[*mirror.User, error] {
	return func(yield func(*mirror.User, error) bool) {
		p := s.parts[wecom.ExportUser]
		if p == nil {
			p = s.parts[wecom.ExportSimpleUser]
		}
		if p == nil {
			s.passUsers(ctx, yield)
			return
		}
		stop := errors.New("stop")
		n := 0
		err := s.each(ctx, p, "userlist", func(dec *json.Decoder) error {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			var g exportUser
			if err := json.Unmarshal(raw, &g); err != nil {
				return err
			}
			if g.UserID == "" {
				return fmt.Errorf("%w: member without userid", errExportFormat)
			}
			if p.Kind == wecom.ExportSimpleUser {
				raw = nil // a partial record: keep the mirror's full raw
			}
			n++
			if !yield(g.toMirror(raw), nil) {
				return stop
			}
			return nil
		}, nil)
		s.r.metrics.ExportRows.WithLabelValues(p.Kind).Add(float64(n))
		if err != nil && !errors.Is(err, stop) {
			yield(nil, err)
		}
	}
}

// Tags: from the API for a reconciliation, the mirror's tags with the exported one
// replaced for a tag export, none (left untouched) otherwise.
func (s *fileSource) Tags(ctx context.Context) iter.Seq2[*mirror.Tag, error] {
	switch {
	case s.source == SourceReconcile:
		return tagsFromAPI(s.cl)(ctx)
	case s.what == ExportTag:
		return s.tagExport(ctx)
	}
	return nil
}

func (s *fileSource) tagExport(ctx context.Context) iter.Seq2[*mirror.Tag, error] {
	return func(yield func(*mirror.Tag, error) bool) {
		tags, err := s.mirrorTags(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		p := s.parts[wecom.ExportTagUser]
		i := slices.IndexFunc(tags, func(t *mirror.Tag) bool { return t.ID == int64(s.tagID) })
		if p.JobID == "-" { // the tag no longer exists
			if i >= 0 {
				tags = slices.Delete(tags, i, i+1)
			}
		} else {
			t := &mirror.Tag{ID: int64(s.tagID)}
			err := s.each(ctx, p, "userlist", func(dec *json.Decoder) error {
				var u struct {
					UserID string `json:"userid"`
				}
				if err := dec.Decode(&u); err != nil {
					return err
				}
				t.UserIDs = append(t.UserIDs, u.UserID)
				return nil
			}, func(key string, dec *json.Decoder) error {
				switch key {
				case "tagname":
					return dec.Decode(&t.Name)
				case "partylist":
					var ds []int64
					if err := dec.Decode(&ds); err != nil {
						return err
					}
					t.Departments = append(t.Departments, ds...)
					return nil
				}
				var skip json.RawMessage
				return dec.Decode(&skip)
			})
			if err != nil {
				yield(nil, err)
				return
			}
			if i >= 0 {
				tags[i] = t
			} else {
				tags = append(tags, t)
			}
		}
		for _, t := range tags {
			if !yield(t, nil) {
				return
			}
		}
	}
}

// mirrorTags reads the mirror's tags with their members.
func (s *fileSource) mirrorTags(ctx context.Context) ([]*mirror.Tag, error) {
	rows, err := s.r.pool.Query(ctx, `SELECT t.tag_id, coalesce(t.name, ''),
		ARRAY(SELECT x.userid FROM wecom.tag_users x WHERE x.corp_id = t.corp_id AND x.tag_id = t.tag_id),
		ARRAY(SELECT x.department_id FROM wecom.tag_departments x WHERE x.corp_id = t.corp_id AND x.tag_id = t.tag_id)
		FROM wecom.tags t WHERE t.corp_id = $1 ORDER BY t.tag_id`, s.corpID)
	if err != nil {
		return nil, fmt.Errorf("reading mirror tags: %w", err)
	}
	var out []*mirror.Tag
	var t mirror.Tag
	_, err = pgx.ForEachRow(rows, []any{&t.ID, &t.Name, &t.UserIDs, &t.Departments}, func() error {
		c := t
		out = append(out, &c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading mirror tags: %w", err)
	}
	return out, nil
}

// allUserUnknown marks every member field unknown: the merge keeps the mirror's values.
var allUserUnknown = append(slices.Clone(mirror.UserFields), mirror.FieldDepartments)

// passUsers yields every mirror member with all fields unknown.
func (s *fileSource) passUsers(ctx context.Context, yield func(*mirror.User, error) bool) {
	rows, err := s.r.pool.Query(ctx, `SELECT userid FROM wecom.users WHERE corp_id = $1`, s.corpID)
	if err != nil {
		yield(nil, fmt.Errorf("reading mirror members: %w", err))
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			yield(nil, err)
			return
		}
		if !yield(&mirror.User{UserID: id, Unknown: allUserUnknown}, nil) {
			return
		}
	}
	if err := rows.Err(); err != nil {
		yield(nil, fmt.Errorf("reading mirror members: %w", err))
	}
}

// passDepartments yields every mirror department with all fields unknown.
func (s *fileSource) passDepartments(ctx context.Context, yield func(*mirror.Department, error) bool) {
	rows, err := s.r.pool.Query(ctx, `SELECT id FROM wecom.departments WHERE corp_id = $1`, s.corpID)
	if err != nil {
		yield(nil, fmt.Errorf("reading mirror departments: %w", err))
		return
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		yield(nil, fmt.Errorf("reading mirror departments: %w", err))
		return
	}
	for _, id := range ids {
		if !yield(&mirror.Department{ID: id, Unknown: mirror.DepartmentFields}, nil) {
			return
		}
	}
}
