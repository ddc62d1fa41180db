package mirror

import (
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// userArgs are the column arrays of users to insert or update, for unnest.
type userArgs struct {
	userid                                                   []string
	name, alias, position, mobile, email, bizMail            []*string
	gender, status, mainDept                                 []*int64
	avatar, telephone, address, openUserID, extattr, unknown []*string
	raw                                                      []*string
	rawReplace                                               []bool
	rawFrom                                                  []*string // inserts: old userid of a renamed member
}

func newUserArgs(n int) *userArgs {
	s := func() []*string { return make([]*string, 0, n) }
	i := func() []*int64 { return make([]*int64, 0, n) }
	return &userArgs{userid: make([]string, 0, n), name: s(), alias: s(), position: s(), mobile: s(), email: s(),
		bizMail: s(), gender: i(), status: i(), mainDept: i(), avatar: s(), telephone: s(), address: s(),
		openUserID: s(), extattr: s(), unknown: s(), raw: s(), rawReplace: make([]bool, 0, n), rawFrom: s()}
}

func (u *userArgs) add(r *userRow, raw *rawAcc) {
	u.userid = append(u.userid, r.UserID)
	u.name = append(u.name, r.Name)
	u.alias = append(u.alias, r.Alias)
	u.position = append(u.position, r.Position)
	u.mobile = append(u.mobile, r.Mobile)
	u.email = append(u.email, r.Email)
	u.bizMail = append(u.bizMail, r.BizMail)
	u.gender = append(u.gender, r.Gender)
	u.status = append(u.status, r.Status)
	u.mainDept = append(u.mainDept, r.MainDepartment)
	u.avatar = append(u.avatar, r.Avatar)
	u.telephone = append(u.telephone, r.Telephone)
	u.address = append(u.address, r.Address)
	u.openUserID = append(u.openUserID, r.OpenUserID)
	var ext *string
	if r.ExtAttr != nil {
		ext = ptr(string(r.ExtAttr))
	}
	u.extattr = append(u.extattr, ext)
	u.unknown = append(u.unknown, ptr(strings.Join(r.Unknown, ",")))
	v, rep := rawArg(raw)
	u.raw = append(u.raw, v)
	u.rawReplace = append(u.rawReplace, rep)
	u.rawFrom = append(u.rawFrom, nil)
}

func (u *userArgs) args(corpID string) []any {
	return []any{corpID, u.userid, flat(u.name), flat(u.alias), flat(u.position), flat(u.mobile), flat(u.email),
		flat(u.bizMail), flat(u.gender), flat(u.status), flat(u.mainDept), flat(u.avatar), flat(u.telephone),
		flat(u.address), flat(u.openUserID), flat(u.extattr), flat(u.unknown), flat(u.raw)}
}

// flat passes a slice as an array parameter through pgtype.FlatArray, which pgx encodes
// with one element plan rather than by reflection on every element (a slice of pointers
// or of byte slices has no fast path of its own); the apply path sends tens of thousands
// of elements per batch while Postgres waits.
func flat[T any](s []T) pgtype.FlatArray[T] { return pgtype.FlatArray[T](s) }

// userArrays are the column arrays of users to write, unnested side by side (one
// function scan: no join on ordinality).
const userArrays = `$2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
	$9::int8[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
	$18::text[], $19::bool[]`

const userColumnsOf = `userid, name, alias, position, mobile, email, biz_mail, gender, status,
	main_department, avatar, telephone, address, open_userid, extattr, unknown, raw, rep`

const insertUsersSQL = `INSERT INTO wecom.users (corp_id, userid, name, alias, position, mobile, email, biz_mail,
	gender, status, main_department, avatar, telephone, address, open_userid, extattr, unknown_fields, raw)
	SELECT $1, s.userid, s.name, s.alias, s.position, s.mobile, s.email, s.biz_mail, s.gender::smallint,
	s.status::smallint, s.main_department, s.avatar, s.telephone, s.address, s.open_userid, s.extattr::jsonb,
	string_to_array(s.unknown, ','),
	CASE WHEN s.rep THEN coalesce(s.raw::jsonb, '{}')
		ELSE coalesce((SELECT o.raw FROM wecom.users o WHERE o.corp_id = $1 AND o.userid = s.from_userid), '{}')
			|| coalesce(s.raw::jsonb, '{}') END
	FROM unnest(` + userArrays + `, $20::text[]) AS s(` + userColumnsOf + `, from_userid)`

const updateUsersSQL = `UPDATE wecom.users u SET name = s.name, alias = s.alias, position = s.position,
	mobile = s.mobile, email = s.email, biz_mail = s.biz_mail, gender = s.gender::smallint,
	status = s.status::smallint, main_department = s.main_department, avatar = s.avatar,
	telephone = s.telephone, address = s.address, open_userid = s.open_userid, extattr = s.extattr::jsonb,
	unknown_fields = string_to_array(s.unknown, ','),
	raw = CASE WHEN s.raw IS NULL THEN u.raw WHEN s.rep THEN s.raw::jsonb ELSE u.raw || s.raw::jsonb END,
	updated_at = now()
	FROM unnest(` + userArrays + `) AS s(` + userColumnsOf + `)
	WHERE u.corp_id = $1 AND u.userid = ANY($2) AND u.userid = s.userid` // ANY: probe the primary key

// deptArgs are the column arrays of departments to insert or update.
type deptArgs struct {
	id              []int64
	name, nameEn    []*string
	parentID, order []*int64
	unknown, raw    []*string
	rawReplace      []bool
}

func (d *deptArgs) add(r *deptRow, raw *rawAcc) {
	d.id = append(d.id, r.ID)
	d.name = append(d.name, r.Name)
	d.nameEn = append(d.nameEn, r.NameEn)
	d.parentID = append(d.parentID, r.ParentID)
	d.order = append(d.order, r.SortOrder)
	d.unknown = append(d.unknown, ptr(strings.Join(r.Unknown, ",")))
	v, rep := rawArg(raw)
	d.raw = append(d.raw, v)
	d.rawReplace = append(d.rawReplace, rep)
}

const deptUnnest = `unnest($2::int8[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[], $8::text[], $9::bool[])
	AS s(id, name, name_en, parent_id, sort_order, unknown, raw, rep)`

const insertDeptsSQL = `INSERT INTO wecom.departments (corp_id, id, name, name_en, parent_id, sort_order, unknown_fields, raw)
	SELECT $1, s.id, s.name, s.name_en, s.parent_id, s.sort_order, string_to_array(s.unknown, ','),
	coalesce(s.raw::jsonb, '{}') FROM ` + deptUnnest

const updateDeptsSQL = `UPDATE wecom.departments d SET name = s.name, name_en = s.name_en, parent_id = s.parent_id,
	sort_order = s.sort_order, unknown_fields = string_to_array(s.unknown, ','),
	raw = CASE WHEN s.raw IS NULL THEN d.raw WHEN s.rep THEN s.raw::jsonb ELSE d.raw || s.raw::jsonb END,
	updated_at = now()
	FROM ` + deptUnnest + ` WHERE d.corp_id = $1 AND d.id = ANY($2) AND d.id = s.id`

// queueWrites queues the statements that turn the loaded state into the applier's final
// state, touching only rows that changed. It returns how many member rows it inserts.
func queueWrites(w *pgx.Batch, a *applier, corpID string) (created int) {
	// Effects on tag rows the batch did not load, in event order.
	for i := 0; i < len(a.ops); {
		op := a.ops[i]
		switch op.kind {
		case 'r':
			w.Queue(`WITH moved AS (DELETE FROM wecom.tag_users WHERE corp_id = $1 AND userid = $2 RETURNING tag_id)
				INSERT INTO wecom.tag_users (corp_id, tag_id, userid) SELECT $1, tag_id, $3 FROM moved
				ON CONFLICT DO NOTHING`, corpID, op.from, op.to)
			i++
		case 'd':
			var ids []string
			for ; i < len(a.ops) && a.ops[i].kind == 'd'; i++ {
				ids = append(ids, a.ops[i].from)
			}
			w.Queue(`DELETE FROM wecom.tag_users WHERE corp_id = $1 AND userid = ANY($2)`, corpID, ids)
		case 'p':
			var ids []int64
			for ; i < len(a.ops) && a.ops[i].kind == 'p'; i++ {
				ids = append(ids, a.ops[i].deptIDs...)
			}
			w.Queue(`DELETE FROM wecom.tag_departments WHERE corp_id = $1 AND department_id = ANY($2)`, corpID, ids)
		}
	}

	// Members.
	keys := make([]string, 0, len(a.users)+len(a.origUsers))
	for k := range a.origUsers {
		keys = append(keys, k)
	}
	for k := range a.users {
		if a.origUsers[k] == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var gone, memberOf []string
	ins, upd := newUserArgs(len(keys)), newUserArgs(len(keys))
	var mUser []string
	var mDept, mOrder []int64
	var mLeader []bool
	for _, k := range keys {
		o, f := a.origUsers[k], a.users[k]
		switch {
		case f == nil:
			if o != nil {
				gone = append(gone, k)
			}
			continue
		case o == nil:
			ins.add(f, a.userRaw[k])
			if from, ok := a.renamedFrom[k]; ok && a.origUsers[from] != nil {
				ins.rawFrom[len(ins.rawFrom)-1] = ptr(from)
			}
		default:
			if !o.sameFields(f) || a.rawDirty[k] {
				upd.add(f, a.userRaw[k])
			}
			if slices.Equal(o.Departments, f.Departments) {
				continue
			}
			memberOf = append(memberOf, k)
		}
		for _, m := range f.Departments {
			mUser = append(mUser, k)
			mDept = append(mDept, m.DepartmentID)
			mOrder = append(mOrder, m.SortOrder)
			mLeader = append(mLeader, m.IsLeader)
		}
	}
	if len(gone) > 0 || len(memberOf) > 0 {
		w.Queue(`DELETE FROM wecom.user_departments WHERE corp_id = $1 AND userid = ANY($2)`, corpID, append(gone, memberOf...))
	}
	if len(upd.userid) > 0 {
		w.Queue(updateUsersSQL, append(upd.args(corpID), upd.rawReplace)...)
	}
	if len(ins.userid) > 0 {
		// Before the deletes: a renamed member's row takes the raw of its old row.
		w.Queue(insertUsersSQL, append(ins.args(corpID), ins.rawReplace, ins.rawFrom)...)
	}
	if len(gone) > 0 {
		w.Queue(`DELETE FROM wecom.users WHERE corp_id = $1 AND userid = ANY($2)`, corpID, gone)
	}
	if len(mUser) > 0 {
		w.Queue(`INSERT INTO wecom.user_departments (corp_id, userid, department_id, sort_order, is_leader)
			SELECT $1, u, d, o, l FROM unnest($2::text[], $3::int8[], $4::int8[], $5::bool[]) AS x(u, d, o, l)`,
			corpID, mUser, mDept, mOrder, mLeader)
	}

	// Departments.
	var goneD []int64
	var insD, updD deptArgs
	for id, o := range a.origDepts {
		if a.depts[id] == nil {
			goneD = append(goneD, id)
		}
		_ = o
	}
	for id, f := range a.depts {
		o := a.origDepts[id]
		switch {
		case o == nil:
			insD.add(f, a.deptRaw[id])
		case !o.equal(f) || a.deptRaw[id] != nil:
			updD.add(f, a.deptRaw[id])
		}
	}
	if len(goneD) > 0 {
		w.Queue(`DELETE FROM wecom.departments WHERE corp_id = $1 AND id = ANY($2)`, corpID, goneD)
	}
	for _, x := range []struct {
		sql  string
		args *deptArgs
	}{{updateDeptsSQL, &updD}, {insertDeptsSQL, &insD}} {
		d := x.args
		if len(d.id) > 0 {
			w.Queue(x.sql, corpID, d.id, d.name, d.nameEn, d.parentID, d.order, d.unknown, d.raw, d.rawReplace)
		}
	}

	// Tags: rows first seen, then member diffs against the table after the global ops.
	var newTags []int64
	var addT, delT, addDT, delDT []int64
	var addU, delU []string
	var addD, delD []int64
	for id, cur := range a.tags {
		g := a.gTags[id]
		if g == nil {
			newTags = append(newTags, id)
			g = &tagRow{}
		}
		for u := range cur.Users {
			if _, ok := g.Users[u]; !ok {
				addT, addU = append(addT, id), append(addU, u)
			}
		}
		for u := range g.Users {
			if _, ok := cur.Users[u]; !ok {
				delT, delU = append(delT, id), append(delU, u)
			}
		}
		for d := range cur.Depts {
			if _, ok := g.Depts[d]; !ok {
				addDT, addD = append(addDT, id), append(addD, d)
			}
		}
		for d := range g.Depts {
			if _, ok := cur.Depts[d]; !ok {
				delDT, delD = append(delDT, id), append(delD, d)
			}
		}
	}
	if len(newTags) > 0 {
		w.Queue(`INSERT INTO wecom.tags (corp_id, tag_id) SELECT $1, unnest($2::int8[]) ON CONFLICT DO NOTHING`, corpID, newTags)
	}
	if len(delT) > 0 {
		w.Queue(`DELETE FROM wecom.tag_users t USING unnest($2::int8[], $3::text[]) AS x(tag, u)
			WHERE t.corp_id = $1 AND t.tag_id = x.tag AND t.userid = x.u`, corpID, delT, delU)
	}
	if len(addT) > 0 {
		w.Queue(`INSERT INTO wecom.tag_users (corp_id, tag_id, userid) SELECT $1, tag, u
			FROM unnest($2::int8[], $3::text[]) AS x(tag, u) ON CONFLICT DO NOTHING`, corpID, addT, addU)
	}
	if len(delDT) > 0 {
		w.Queue(`DELETE FROM wecom.tag_departments t USING unnest($2::int8[], $3::int8[]) AS x(tag, d)
			WHERE t.corp_id = $1 AND t.tag_id = x.tag AND t.department_id = x.d`, corpID, delDT, delD)
	}
	if len(addDT) > 0 {
		w.Queue(`INSERT INTO wecom.tag_departments (corp_id, tag_id, department_id) SELECT $1, tag, d
			FROM unnest($2::int8[], $3::int8[]) AS x(tag, d) ON CONFLICT DO NOTHING`, corpID, addDT, addD)
	}
	return len(ins.userid)
}
