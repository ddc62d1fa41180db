package emulator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
)

var (
	seedSurnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
	seedGiven    = []rune("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉晨浩宇欣怡子轩梓涵雨泽思远佳琪嘉怡俊杰文博志强晓东海波建国立新春梅秋菊")
	seedUnits    = []string{"研发", "产品", "设计", "测试", "运维", "销售", "市场", "客服", "财务", "人事", "法务", "采购", "行政", "数据", "安全", "供应链", "品牌", "渠道", "战略", "培训"}
	seedSuffixes = []string{"中心", "部", "组", "小组", "团队"}
	seedTitles   = []string{"工程师", "高级工程师", "经理", "专员", "主管", "总监", "助理", "顾问", "架构师", "分析师"}
	seedTags     = []string{"党员", "新员工", "外包", "实习生", "技术委员会", "工会", "篮球协会", "读书会", "志愿者", "核心骨干", "远程办公", "管培生"}
)

// Seed replaces the directory's content with a realistic org of n members: a department
// tree about five levels deep (fan-out 3–8, roughly 25 members per leaf), Chinese names,
// unique mobiles (1380000xxxx-style) and emails, one leader per department who is the
// direct_leader of its other members, about 5% of members in two departments, statuses
// mostly 1 with some 2 and 4, and a dozen tags. The same rngSeed gives the same org. It
// bypasses validation and records no events; 200,000 members take about a second.
func (d *Directory) Seed(n int, rngSeed uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rng := rand.New(rand.NewPCG(rngSeed, 0x5eed))
	root := d.depts[rootDepartmentID].dept
	d.reset()
	d.insertDept(root)

	// Build the tree breadth first until there are enough departments.
	want := max(1, n/25)
	var leaves []int
	level := []int{rootDepartmentID}
	nextID := 2
	for depth := 2; len(d.depts) < want+1 && depth <= 6; depth++ {
		var next []int
		for _, p := range level {
			fan := 3 + rng.IntN(6)
			used := map[string]bool{}
			for i := 0; i < fan && len(d.depts) < want+1; i++ {
				name := seedUnits[rng.IntN(len(seedUnits))] + seedSuffixes[min(depth-2, len(seedSuffixes)-1)]
				for used[name] {
					name = seedUnits[rng.IntN(len(seedUnits))] + strconv.Itoa(i+1) + seedSuffixes[min(depth-2, len(seedSuffixes)-1)]
				}
				used[name] = true
				d.insertDept(Department{ID: nextID, Name: name, ParentID: p, Order: uint32(100000000 - i*1000)})
				next = append(next, nextID)
				nextID++
			}
		}
		level = next
	}
	for id, node := range d.depts {
		if len(node.children) == 0 && id != rootDepartmentID {
			leaves = append(leaves, id)
		}
	}
	if len(leaves) == 0 {
		leaves = []int{rootDepartmentID}
	}
	slices.Sort(leaves)
	// All departments, so leaders of inner departments exist too.
	all := d.subtree(rootDepartmentID)
	leaderOf := map[int]string{}

	for i := 0; i < n; i++ {
		userid := fmt.Sprintf("u%06d", i+1)
		name := string(seedSurnames[rng.IntN(len(seedSurnames))]) + string(seedGiven[rng.IntN(len(seedGiven))])
		if rng.IntN(2) == 0 {
			name += string(seedGiven[rng.IntN(len(seedGiven))])
		}
		var dept int
		if i < len(all) {
			dept = all[i] // the first member of every department becomes its leader
		} else {
			dept = leaves[rng.IntN(len(leaves))]
		}
		u := &User{
			UserID:         userid,
			Name:           name,
			Position:       seedTitles[rng.IntN(len(seedTitles))],
			Mobile:         fmt.Sprintf("1%d%09d", 3+rng.IntN(6), i+1),
			Email:          userid + "@example.com",
			BizMail:        userid + "@" + lower(d.corpID) + ".wecom.work",
			Gender:         strconv.Itoa(1 + rng.IntN(2)),
			Status:         1,
			Avatar:         "https://wework.qpic.cn/wwhead/seed" + userid + "/0",
			Telephone:      fmt.Sprintf("020-%08d", i+1),
			Address:        "广州市海珠区",
			MainDepartment: dept,
			Departments:    []int{dept},
			Orders:         []uint32{uint32(rng.IntN(1000))},
			IsLeaderInDept: []int{0},
			DirectLeader:   []string{},
			ExtAttr:        ExtAttr{Attrs: []ExtAttrItem{{Type: 0, Name: "工号", Text: &ExtText{Value: fmt.Sprintf("E%06d", i+1)}}}},
		}
		if _, ok := leaderOf[dept]; !ok {
			leaderOf[dept] = userid
			u.IsLeaderInDept = []int{1}
		} else {
			u.DirectLeader = []string{leaderOf[dept]}
		}
		if rng.IntN(20) == 0 && len(all) > 1 {
			second := all[1+rng.IntN(len(all)-1)]
			if second != dept {
				u.Departments = append(u.Departments, second)
				u.Orders = append(u.Orders, 0)
				u.IsLeaderInDept = append(u.IsLeaderInDept, 0)
			}
		}
		switch r := rng.IntN(100); {
		case r < 3:
			u.Status = 2
		case r < 8:
			u.Status = 4
		}
		if rng.IntN(10) == 0 {
			u.Alias = "小" + string([]rune(name)[len([]rune(name))-1])
		}
		d.insertUser(u)
	}
	for i, name := range seedTags {
		t := Tag{TagID: i + 1, TagName: name}
		for j := 0; j < min(n, 50); j++ {
			t.Users = append(t.Users, fmt.Sprintf("u%06d", 1+rng.IntN(n)))
		}
		if i%3 == 0 && len(leaves) > 0 {
			t.Parties = []int{leaves[rng.IntN(len(leaves))]}
		}
		d.insertTag(t)
	}
}
