package emulator

import (
	"strconv"
	"strings"
)

func (s *Server) tagRoutes() []Route {
	return []Route{
		{Path: "/cgi-bin/tag/create", Method: post, Allow: writeSecrets, Handle: s.tagCreate},
		{Path: "/cgi-bin/tag/update", Method: post, Allow: writeSecrets, Handle: s.tagUpdate},
		{Path: "/cgi-bin/tag/delete", Method: get, Allow: writeSecrets, Handle: s.tagDelete},
		{Path: "/cgi-bin/tag/get", Method: get, Handle: s.tagGet},
		{Path: "/cgi-bin/tag/list", Method: get, Handle: s.tagList},
		{Path: "/cgi-bin/tag/addtagusers", Method: post, Allow: writeSecrets, Handle: s.tagAddUsers},
		{Path: "/cgi-bin/tag/deltagusers", Method: post, Allow: writeSecrets, Handle: s.tagDelUsers},
	}
}

type tagInput struct {
	TagID   *FlexInt `json:"tagid"`
	TagName *string  `json:"tagname"`
}

func (s *Server) tagCreate(c *Call) (any, error) {
	var in tagInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	name, id := "", 0
	if in.TagName != nil {
		name = *in.TagName
	}
	if in.TagID != nil {
		id = in.TagID.Int()
	}
	var got int
	_, err := s.dir.Update(func(tx *Tx) error {
		var err error
		got, err = tx.CreateTag(name, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return struct {
		base
		TagID int `json:"tagid"`
	}{base{0, "created"}, got}, nil
}

func (s *Server) tagUpdate(c *Call) (any, error) {
	var in tagInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if in.TagID == nil {
		return nil, apiErr(CodeInvalidTagID, "invalid tagid")
	}
	name := ""
	if in.TagName != nil {
		name = *in.TagName
	}
	if _, err := s.dir.Update(func(tx *Tx) error { return tx.UpdateTag(in.TagID.Int(), name) }); err != nil {
		return nil, err
	}
	return base{0, "updated"}, nil
}

func readTagParam(c *Call) (int, error) {
	id, err := strconv.Atoi(c.Query("tagid"))
	if err != nil {
		return 0, apiErr(CodeInvalidTagID, "invalid tagid")
	}
	return id, nil
}

func (s *Server) tagDelete(c *Call) (any, error) {
	id, err := readTagParam(c)
	if err != nil {
		return nil, err
	}
	if _, err := s.dir.Update(func(tx *Tx) error { return tx.DeleteTag(id) }); err != nil {
		return nil, err
	}
	return base{0, "deleted"}, nil
}

type tagUser struct {
	UserID string `json:"userid"`
	Name   string `json:"name"`
}

func (s *Server) tagGet(c *Call) (any, error) {
	id, err := readTagParam(c)
	if err != nil {
		return nil, err
	}
	t, ok := s.dir.Tag(id)
	if !ok {
		return nil, apiErr(CodeInvalidTagID, "invalid tagid")
	}
	users := make([]tagUser, 0, len(t.Users))
	for _, uid := range t.Users {
		if u, ok := s.dir.User(uid); ok {
			users = append(users, tagUser{u.UserID, u.Name})
		}
	}
	return struct {
		base
		TagName   string    `json:"tagname"`
		UserList  []tagUser `json:"userlist"`
		PartyList []int     `json:"partylist"`
	}{okBase, t.TagName, users, t.Parties}, nil
}

func (s *Server) tagList(c *Call) (any, error) {
	type item struct {
		TagID   int    `json:"tagid"`
		TagName string `json:"tagname"`
	}
	tags := s.dir.Tags()
	out := make([]item, len(tags))
	for i, t := range tags {
		out[i] = item{t.TagID, t.TagName}
	}
	return struct {
		base
		TagList []item `json:"taglist"`
	}{okBase, out}, nil
}

type tagMembersInput struct {
	TagID     *FlexInt `json:"tagid"`
	UserList  []string `json:"userlist"`
	PartyList []int    `json:"partylist"`
}

// tagMembersResp is the partial-result shape: invalidlist is a "|"-joined string and
// invalidparty an int array, both omitted when empty (API-FACTS §3.4).
type tagMembersResp struct {
	base
	InvalidList  string `json:"invalidlist,omitempty"`
	InvalidParty []int  `json:"invalidparty,omitempty"`
}

func (s *Server) tagMembers(c *Call, add bool) (any, error) {
	var in tagMembersInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if in.TagID == nil {
		return nil, apiErr(CodeInvalidTagID, "invalid tagid")
	}
	var res TagMembersResult
	err := s.update(c, func(tx *Tx) error {
		var err error
		if add {
			res, err = tx.AddTagMembers(in.TagID.Int(), in.UserList, in.PartyList)
		} else {
			res, err = tx.DelTagMembers(in.TagID.Int(), in.UserList, in.PartyList)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	msg := "ok"
	if !add {
		msg = "deleted"
	}
	return tagMembersResp{base{0, msg}, strings.Join(res.InvalidUsers, "|"), res.InvalidParties}, nil
}

func (s *Server) tagAddUsers(c *Call) (any, error) { return s.tagMembers(c, true) }
func (s *Server) tagDelUsers(c *Call) (any, error) { return s.tagMembers(c, false) }
