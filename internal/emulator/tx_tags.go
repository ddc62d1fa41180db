package emulator

import "sort"

const (
	maxTagUsersPerCall   = 1000
	maxTagPartiesPerCall = 100
)

// CreateTag creates a tag and returns its id (id when > 0, else the largest id + 1).
// Errors: 40072 name empty or longer than 32 characters, 40071 name taken, 40068 id taken
// or negative. No callback exists for tag creation.
func (tx *Tx) CreateTag(name string, id int) (int, error) {
	d := tx.d
	if name == "" || runeLen(name) > 32 {
		return 0, apiErr(CodeTagNameLength, "invalid tagname length")
	}
	for _, t := range d.tags {
		if t.name == name {
			return 0, apiErr(CodeTagNameExists, "tagname existed")
		}
	}
	if id < 0 {
		return 0, apiErr(CodeInvalidTagID, "invalid tagid")
	}
	if id == 0 {
		id = d.maxTag + 1
	} else if _, ok := d.tags[id]; ok {
		return 0, apiErr(CodeInvalidTagID, "tagid existed")
	}
	d.insertTag(Tag{TagID: id, TagName: name})
	return id, nil
}

// UpdateTag renames a tag. Errors: 40068 unknown tag, 40072, 40071.
func (tx *Tx) UpdateTag(id int, name string) error {
	d := tx.d
	t, ok := d.tags[id]
	if !ok {
		return apiErr(CodeInvalidTagID, "invalid tagid")
	}
	if name == "" || runeLen(name) > 32 {
		return apiErr(CodeTagNameLength, "invalid tagname length")
	}
	for _, o := range d.tags {
		if o.id != id && o.name == name {
			return apiErr(CodeTagNameExists, "tagname existed")
		}
	}
	t.name = name
	return nil
}

// DeleteTag deletes a tag (40068 when unknown). No event (none exists in WeCom).
func (tx *Tx) DeleteTag(id int) error {
	if _, ok := tx.d.tags[id]; !ok {
		return apiErr(CodeInvalidTagID, "invalid tagid")
	}
	delete(tx.d.tags, id)
	return nil
}

// TagMembersResult lists the entries of an addtagusers/deltagusers call that were
// invalid (unknown member or department, or for deletion not a member).
type TagMembersResult struct {
	InvalidUsers   []string
	InvalidParties []int
}

// AddTagMembers adds users and departments to a tag; unknown entries are reported, not
// fatal. Errors: 40068 unknown tag, 81014 more than 1000 users or 100 parties, 40070 all
// entries invalid (or none given), 81003 the tag would exceed 30000 members. An update_tag
// event lists the members actually added.
func (tx *Tx) AddTagMembers(id int, users []string, parties []int) (TagMembersResult, error) {
	return tx.tagMembers(id, users, parties, true)
}

// DelTagMembers removes users and departments from a tag, like AddTagMembers; all invalid
// is 40031.
func (tx *Tx) DelTagMembers(id int, users []string, parties []int) (TagMembersResult, error) {
	return tx.tagMembers(id, users, parties, false)
}

func (tx *Tx) tagMembers(id int, users []string, parties []int, add bool) (TagMembersResult, error) {
	d := tx.d
	var res TagMembersResult
	t, ok := d.tags[id]
	if !ok {
		return res, apiErr(CodeInvalidTagID, "invalid tagid")
	}
	if len(users) > maxTagUsersPerCall || len(parties) > maxTagPartiesPerCall {
		return res, apiErr(CodeTagTooManyInCall, "too many users or parties in one call")
	}
	var okUsers []string
	var okParties []int
	for _, u := range users {
		usr, exists := d.users[lower(u)]
		_, member := t.users[lower(u)]
		switch {
		case !exists || !add && !member:
			res.InvalidUsers = append(res.InvalidUsers, u)
		case add && member:
			// already tagged: valid, nothing to change
		default:
			okUsers = append(okUsers, usr.UserID)
		}
	}
	for _, p := range parties {
		_, exists := d.depts[p]
		_, member := t.parties[p]
		if !exists || !add && !member {
			res.InvalidParties = append(res.InvalidParties, p)
			continue
		}
		if add && member {
			continue
		}
		okParties = append(okParties, p)
	}
	if len(res.InvalidUsers) == len(users) && len(res.InvalidParties) == len(parties) {
		if add {
			return res, apiErr(CodeTagAllInvalid, "all list invalid ")
		}
		return res, apiErr(CodeInvalidUserList, "all list invalid")
	}
	if add && len(t.users)+len(t.parties)+len(okUsers)+len(okParties) > maxTagMembers {
		return res, apiErr(CodeTagTooManyMembers, "tag member count exceed limit")
	}
	okUsers = dedupStrings(okUsers)
	okParties = dedupInts(okParties)
	for _, u := range okUsers {
		if add {
			t.users[lower(u)] = struct{}{}
		} else {
			delete(t.users, lower(u))
		}
	}
	for _, p := range okParties {
		if add {
			t.parties[p] = struct{}{}
		} else {
			delete(t.parties, p)
		}
	}
	if len(okUsers) > 0 || len(okParties) > 0 {
		ev := ChangeEvent{ChangeType: ChangeUpdateTag, TagID: id}
		if add {
			ev.AddUsers, ev.AddParties = okUsers, okParties
		} else {
			ev.DelUsers, ev.DelParties = okUsers, okParties
		}
		tx.events = append(tx.events, ev)
	}
	return res, nil
}

func dedupStrings(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, v := range s {
		if !seen[lower(v)] {
			seen[lower(v)] = true
			out = append(out, v)
		}
	}
	return out
}

func dedupInts(s []int) []int {
	out := append([]int(nil), s...)
	sort.Ints(out)
	j := 0
	for i, v := range out {
		if i == 0 || v != out[j-1] {
			out[j] = v
			j++
		}
	}
	return out[:j]
}
