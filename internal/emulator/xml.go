package emulator

import (
	"strconv"
	"strings"
	"time"
)

// xmlBuf writes WeCom-style event XML: string fields in CDATA, numbers plain, as in the
// official samples (API-FACTS §2.3–2.5).
type xmlBuf struct{ strings.Builder }

func (b *xmlBuf) cdata(name, v string) {
	b.WriteString("<" + name + "><![CDATA[")
	b.WriteString(strings.ReplaceAll(v, "]]>", "]]]]><![CDATA[>"))
	b.WriteString("]]></" + name + ">")
}

func (b *xmlBuf) plain(name, v string) {
	b.WriteString("<" + name + ">" + v + "</" + name + ">")
}

func (b *xmlBuf) header(corpID string, at time.Time, event string) {
	b.WriteString("<xml>")
	b.cdata("ToUserName", corpID)
	b.cdata("FromUserName", "sys")
	b.plain("CreateTime", strconv.FormatInt(at.Unix(), 10))
	b.cdata("MsgType", "event")
	b.cdata("Event", event)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// changeXML renders a change_contact event, or nil when minimal mode sends nothing for it.
// Legacy mode: create_user carries every member field; update_user only UserID, NewUserID
// (on rename) and the changed fields; create_party Id/Name/ParentId/Order; update_party
// Id plus the changed Name/ParentId. Minimal mode (post-2022-08-15 URLs): create_user
// UserID/Department; update_user only for department or userid changes with
// UserID/NewUserID/Department; create_party Id/ParentId; update_party only for parent
// changes with Id/ParentId. delete_* and update_tag are the same in both modes.
func changeXML(corpID string, ev ChangeEvent, at time.Time, minimal bool) []byte {
	var b xmlBuf
	b.header(corpID, at, "change_contact")
	b.cdata("ChangeType", ev.ChangeType)
	switch ev.ChangeType {
	case ChangeCreateUser:
		u := ev.User
		b.cdata("UserID", u.UserID)
		if minimal {
			b.cdata("Department", joinInts(u.Departments))
			break
		}
		b.cdata("Name", u.Name)
		b.cdata("Department", joinInts(u.Departments))
		b.plain("MainDepartment", strconv.Itoa(u.MainDepartment))
		b.cdata("IsLeaderInDept", joinInts(u.IsLeaderInDept))
		b.cdata("DirectLeader", strings.Join(u.DirectLeader, ","))
		b.cdata("Position", u.Position)
		b.plain("Mobile", u.Mobile)
		b.plain("Gender", u.Gender)
		b.cdata("Email", u.Email)
		b.cdata("BizMail", u.BizMail)
		b.plain("Status", strconv.Itoa(u.Status))
		b.cdata("Avatar", u.Avatar)
		b.cdata("Alias", u.Alias)
		b.cdata("Telephone", u.Telephone)
		b.cdata("Address", u.Address)
		writeExtAttr(&b, u.ExtAttr)
	case ChangeUpdateUser:
		u, f := ev.User, ev.Changed
		if minimal && ev.NewUserID == "" && f&FieldDepartment == 0 {
			return nil
		}
		b.cdata("UserID", ev.UserID)
		if ev.NewUserID != "" {
			b.cdata("NewUserID", ev.NewUserID)
		}
		if minimal {
			if f&FieldDepartment != 0 {
				b.cdata("Department", joinInts(u.Departments))
			}
			break
		}
		if f&FieldName != 0 {
			b.cdata("Name", u.Name)
		}
		if f&(FieldDepartment|FieldIsLeaderInDept) != 0 {
			b.cdata("Department", joinInts(u.Departments))
		}
		if f&FieldMainDepartment != 0 {
			b.plain("MainDepartment", strconv.Itoa(u.MainDepartment))
		}
		if f&(FieldDepartment|FieldIsLeaderInDept) != 0 {
			b.cdata("IsLeaderInDept", joinInts(u.IsLeaderInDept))
		}
		if f&FieldDirectLeader != 0 {
			b.cdata("DirectLeader", strings.Join(u.DirectLeader, ","))
		}
		if f&FieldPosition != 0 {
			b.cdata("Position", u.Position)
		}
		if f&FieldMobile != 0 {
			b.plain("Mobile", u.Mobile)
		}
		if f&FieldGender != 0 {
			b.plain("Gender", u.Gender)
		}
		if f&FieldEmail != 0 {
			b.cdata("Email", u.Email)
		}
		if f&FieldBizMail != 0 {
			b.cdata("BizMail", u.BizMail)
		}
		if f&FieldStatus != 0 {
			b.plain("Status", strconv.Itoa(u.Status))
		}
		if f&FieldAvatar != 0 {
			b.cdata("Avatar", u.Avatar)
		}
		if f&FieldAlias != 0 {
			b.cdata("Alias", u.Alias)
		}
		if f&FieldTelephone != 0 {
			b.cdata("Telephone", u.Telephone)
		}
		if f&FieldAddress != 0 {
			b.cdata("Address", u.Address)
		}
		if f&FieldExtAttr != 0 {
			writeExtAttr(&b, u.ExtAttr)
		}
	case ChangeDeleteUser:
		b.cdata("UserID", ev.UserID)
	case ChangeCreateParty:
		p := ev.Party
		b.plain("Id", strconv.Itoa(p.ID))
		if !minimal {
			b.cdata("Name", p.Name)
		}
		b.cdata("ParentId", strconv.Itoa(p.ParentID))
		if !minimal {
			b.plain("Order", strconv.FormatUint(uint64(p.Order), 10))
		}
	case ChangeUpdateParty:
		p := ev.Party
		if minimal && !ev.ParentChanged {
			return nil
		}
		b.plain("Id", strconv.Itoa(p.ID))
		if ev.NameChanged && !minimal {
			b.cdata("Name", p.Name)
		}
		if ev.ParentChanged {
			b.cdata("ParentId", strconv.Itoa(p.ParentID))
		}
	case ChangeDeleteParty:
		b.plain("Id", strconv.Itoa(ev.PartyID))
	case ChangeUpdateTag:
		b.plain("TagId", strconv.Itoa(ev.TagID))
		if len(ev.AddUsers) > 0 {
			b.cdata("AddUserItems", strings.Join(ev.AddUsers, ","))
		}
		if len(ev.DelUsers) > 0 {
			b.cdata("DelUserItems", strings.Join(ev.DelUsers, ","))
		}
		if len(ev.AddParties) > 0 {
			b.cdata("AddPartyItems", joinInts(ev.AddParties))
		}
		if len(ev.DelParties) > 0 {
			b.cdata("DelPartyItems", joinInts(ev.DelParties))
		}
	}
	b.WriteString("</xml>")
	return []byte(b.String())
}

func writeExtAttr(b *xmlBuf, ea ExtAttr) {
	b.WriteString("<ExtAttr>")
	for _, it := range ea.Attrs {
		b.WriteString("<Item>")
		b.cdata("Name", it.Name)
		b.plain("Type", strconv.Itoa(it.Type))
		switch {
		case it.Text != nil:
			b.WriteString("<Text>")
			b.cdata("Value", it.Text.Value)
			b.WriteString("</Text>")
		case it.Web != nil:
			b.WriteString("<Web>")
			b.cdata("Title", it.Web.Title)
			b.cdata("Url", it.Web.URL)
			b.WriteString("</Web>")
		}
		b.WriteString("</Item>")
	}
	b.WriteString("</ExtAttr>")
}

// BatchJobResultXML renders a batch_job_result event (API-FACTS §2.6) for an import job
// (JobType sync_user, replace_user, invite_user, replace_party) or an export job
// (export_user, export_simple_user, export_department, export_taguser). FromUserName is
// "sys". Send it with Server.SendCallback.
func BatchJobResultXML(corpID, jobID, jobType string, errCode int, errMsg string, at time.Time) []byte {
	var b xmlBuf
	b.header(corpID, at, "batch_job_result")
	b.WriteString("<BatchJob>")
	b.cdata("JobId", jobID)
	b.cdata("JobType", jobType)
	b.plain("ErrCode", strconv.Itoa(errCode))
	b.cdata("ErrMsg", errMsg)
	b.WriteString("</BatchJob></xml>")
	return []byte(b.String())
}
