package wecom

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// TagSummary is a tag/list entry.
type TagSummary struct {
	TagID   int    `json:"tagid"`
	TagName string `json:"tagname"`
}

// TagUser is a member of a tag in tag/get.
type TagUser struct {
	UserID string `json:"userid"`
	Name   string `json:"name"`
}

// Tag is the answer of tag/get (and the content of a taguser export): the members and
// departments of a tag (limited to the app's visibility).
type Tag struct {
	TagName   string    `json:"tagname"`
	UserList  []TagUser `json:"userlist"`
	PartyList []int     `json:"partylist"`
}

// TagMembersResult is the partial-failure answer of tag/addtagusers and tag/deltagusers:
// the userids and department ids WeCom rejected (unknown or outside the app's range).
// WeCom sends InvalidList as one "|"-joined string; it is split here.
type TagMembersResult struct {
	InvalidList  []string
	InvalidParty []int
}

var (
	epTagCreate   = ep("tag/create", http.MethodPost, retryResolve)
	epTagUpdate   = ep("tag/update", http.MethodPost, retryIdempotent)
	epTagDelete   = ep("tag/delete", http.MethodGet, retryIdempotent)
	epTagGet      = ep("tag/get", http.MethodGet, retryIdempotent)
	epTagList     = ep("tag/list", http.MethodGet, retryIdempotent)
	epTagAddUsers = ep("tag/addtagusers", http.MethodPost, retryIdempotent)
	epTagDelUsers = ep("tag/deltagusers", http.MethodPost, retryIdempotent)
)

// CreateTag creates a tag (tag/create) and returns its id; tagID 0 lets WeCom choose.
// Tag names are unique, so a lost answer is resolved with tag/list: a tag of that name
// (and id, if given) means created. Errors: ErrExists (40071 name), *Error 40072 (name
// length), 40068 (bad id).
func (c *Client) CreateTag(ctx context.Context, name string, tagID int) (int, error) {
	body := map[string]any{"tagname": name}
	if tagID != 0 {
		body["tagid"] = tagID
	}
	var a struct {
		status
		TagID int `json:"tagid"`
	}
	cl := &call{ep: epTagCreate, body: body}
	cl.resolve = func(ctx context.Context) (bool, error) {
		tags, err := c.ListTags(ctx)
		if err != nil {
			return false, err
		}
		for _, t := range tags {
			if t.TagName == name && (tagID == 0 || t.TagID == tagID) {
				a.TagID = t.TagID
				return true, nil
			}
		}
		return false, nil
	}
	if err := c.do(ctx, cl, &a); err != nil {
		return 0, err
	}
	return a.TagID, nil
}

// UpdateTag renames a tag (tag/update). Errors: ErrNotFound (40068), ErrExists (40071),
// ErrNoPermission (tag of another app).
func (c *Client) UpdateTag(ctx context.Context, tagID int, name string) error {
	var a status
	return c.do(ctx, &call{ep: epTagUpdate, body: map[string]any{"tagid": tagID, "tagname": name}}, &a)
}

// DeleteTag deletes a tag (tag/delete); a repeated delete after a lost answer that finds
// it gone counts as success. Errors: ErrNotFound (40068), ErrNoPermission.
func (c *Client) DeleteTag(ctx context.Context, tagID int) error {
	var a status
	return c.do(ctx, &call{ep: epTagDelete, query: url.Values{"tagid": {strconv.Itoa(tagID)}}, goneOK: true}, &a)
}

// GetTag returns a tag's name, members and departments (tag/get). Errors: ErrNotFound (40068).
func (c *Client) GetTag(ctx context.Context, tagID int) (*Tag, error) {
	var a struct {
		status
		Tag
	}
	if err := c.do(ctx, &call{ep: epTagGet, query: url.Values{"tagid": {strconv.Itoa(tagID)}}}, &a); err != nil {
		return nil, err
	}
	return &a.Tag, nil
}

// ListTags returns every tag (tag/list).
func (c *Client) ListTags(ctx context.Context) ([]TagSummary, error) {
	var a struct {
		status
		TagList []TagSummary `json:"taglist"`
	}
	if err := c.do(ctx, &call{ep: epTagList}, &a); err != nil {
		return nil, err
	}
	return a.TagList, nil
}

type tagMembersAnswer struct {
	status
	InvalidList  string `json:"invalidlist"`
	InvalidParty []int  `json:"invalidparty"`
}

func (a tagMembersAnswer) result() TagMembersResult {
	r := TagMembersResult{InvalidParty: a.InvalidParty}
	if a.InvalidList != "" {
		r.InvalidList = strings.Split(a.InvalidList, "|")
	}
	return r
}

func (c *Client) tagMembers(ctx context.Context, e *endpoint, tagID int, userids []string, parties []int) (TagMembersResult, error) {
	body := map[string]any{"tagid": tagID}
	if len(userids) > 0 {
		body["userlist"] = userids
	}
	if len(parties) > 0 {
		body["partylist"] = parties
	}
	var a tagMembersAnswer
	if err := c.do(ctx, &call{ep: e, body: body}, &a); err != nil {
		return TagMembersResult{}, err
	}
	return a.result(), nil
}

// AddTagUsers adds members (≤1000) and departments (≤100) to a tag (tag/addtagusers). The
// ones WeCom rejected are in the result; when all are rejected it returns *Error 40070.
// Idempotent. Errors: ErrNotFound (40068), *Error 81003/81014 (limits).
func (c *Client) AddTagUsers(ctx context.Context, tagID int, userids []string, parties []int) (TagMembersResult, error) {
	return c.tagMembers(ctx, epTagAddUsers, tagID, userids, parties)
}

// DelTagUsers removes members and departments from a tag (tag/deltagusers), with the same
// partial-failure result; all rejected is *Error 40031.
func (c *Client) DelTagUsers(ctx context.Context, tagID int, userids []string, parties []int) (TagMembersResult, error) {
	return c.tagMembers(ctx, epTagDelUsers, tagID, userids, parties)
}
