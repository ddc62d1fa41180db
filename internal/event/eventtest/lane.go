package eventtest

import (
	"fmt"
	"time"

	"github.com/wecomsync/wecomsync/internal/event"
)

// LaneEvent returns the bus message (subject, body, id) of event i of a busy directory,
// the load of the apply benchmarks: even events create members, odd ones update a member
// created about 1,000 events before (position and mobile). Within a batch of a few
// thousand events many updates follow their member's creation: a lane applies the two
// as one insert.
func LaneEvent(corp string, i int) (subject string, body []byte, id string) {
	return LaneEventAt(corp, i, 1000)
}

// LaneEventAt is LaneEvent with updates of the member created distance events before
// (rounded to an even number; at least 2). A distance longer than a batch makes every
// update change a row of an earlier batch.
func LaneEventAt(corp string, i, distance int) (subject string, body []byte, id string) {
	half := max(distance/2, 1)
	c := i / 2
	var ct, fields string
	if i%2 == 0 || c < half {
		ct = "create_user"
		fields = fmt.Sprintf(`<UserID>user%07d</UserID><Name>成员%d</Name><Department>1,%d</Department><MainDepartment>1</MainDepartment><IsLeaderInDept>0,1</IsLeaderInDept><Position>工程师</Position><Mobile>138%08d</Mobile><Gender>1</Gender><Email>user%d@example.com</Email><Status>1</Status><Alias>u%d</Alias><Telephone>020-%d</Telephone><Address>广州市</Address>`,
			i, c, 2+c%50, i, i, c, c)
	} else {
		ct = "update_user"
		fields = fmt.Sprintf(`<UserID>user%07d</UserID><Position>高级工程师%d</Position><Mobile>139%08d</Mobile>`, 2*(c-half), i, i)
	}
	raw := fmt.Sprintf(`<xml><ToUserName>%s</ToUserName><FromUserName>sys</FromUserName><CreateTime>%d</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>%s</ChangeType>%s</xml>`,
		corp, 1700000000+i, ct, fields)
	e, err := event.Parse([]byte(raw))
	if err != nil {
		panic(err) // the template above is well formed
	}
	m := event.NewMessage(e, []byte(raw), "default", corp, time.Unix(1700000000, 0))
	data, err := m.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return e.Subject(corp), data, m.ID
}
