package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
)

// convergenceEdits is how many console edits TestConvergence makes:
// WORKER_CONVERGENCE_EDITS, default 3000 (300 with -short).
func convergenceEdits(t *testing.T) int {
	if v := os.Getenv("WORKER_CONVERGENCE_EDITS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "WORKER_CONVERGENCE_EDITS")
		return n
	}
	if testing.Short() {
		return 300
	}
	return 3000
}

// TestConvergence drives a random sequence of console edits through the whole pipeline
// while callbacks are duplicated, reordered and redelivered, replicas come and go, and
// requires the mirror to equal the emulator's directory exactly once the stream drains.
//
// Reordering is WeCom's: a callback overtakes at most a few others (the emulator's reorder
// window), and WeCom gives no order between callbacks in that window. The generator
// therefore never touches an entity (member, department, tag) again until enough later
// edits have passed for no reorder to swap two events of the same entity; events of
// different entities commute, so the final state is defined.
func TestConvergence(t *testing.T) {
	t.Parallel()
	n := convergenceEdits(t)
	seed := uint64(20261121)
	t.Logf("edits=%d seed=%d", n, seed)
	w := newWorld(t, worldOptions{seedUsers: 150, faults: emulator.Faults{
		CallbackDuplicateRate: 0.05, CallbackReorderRate: 0.05, CallbackReorderWindow: 3,
	}, wrapReceiver: redeliverSome(0.03, seed)})
	rng := rand.New(rand.NewPCG(seed, 1))
	// Tags exist before the worker starts (tag creation is not called back; the initial
	// sync learns them), members come and go through callbacks.
	for i := 1; i <= 6; i++ {
		w.must(t, "tag/create", map[string]any{"tagname": "conv" + strconv.Itoa(i), "tagid": 800 + i})
	}
	r1 := w.startWorker(t, nil)
	r2 := w.startWorker(t, nil) // a standby replica: pinned failover, never concurrent apply

	g := &editor{w: w, rng: rng, touched: map[string]int{}, sep: 24}
	for i := 0; i < n; i++ {
		g.step(t, i)
		switch i {
		case n / 3:
			r1.stop(t) // the pinned replica may be either: both must hand over cleanly
		case 2 * n / 3:
			r2.stop(t)
			r1 = w.startWorker(t, nil)
		}
	}
	t.Logf("edits made: %v", g.made)
	t.Logf("callbacks: %+v", w.emu.CallbackStats())
	w.waitDrained(t)
	w.requireConverged(t)
	r1.stop(t)
}

// redeliverSome makes the receiver answer 503 after storing a share p of callbacks, so
// WeCom delivers them again (the receiver answers the retry from JetStream's dedup).
func redeliverSome(p float64, seed uint64) func(http.Handler) http.Handler {
	rng := rand.New(rand.NewPCG(seed, 2))
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if r.Method == http.MethodPost && rec.Code == http.StatusOK && rng.Float64() < p {
				http.Error(rw, "lost answer", http.StatusServiceUnavailable)
				return
			}
			for k, v := range rec.Header() {
				rw.Header()[k] = v
			}
			rw.WriteHeader(rec.Code)
			_, _ = rw.Write(rec.Body.Bytes())
		})
	}
}

// editor makes random console edits, keeping every entity untouched for sep edits after
// each edit that involves it.
type editor struct {
	w       *world
	rng     *rand.Rand
	touched map[string]int
	sep     int
	next    int
	made    map[string]int
}

func (g *editor) free(i int, keys ...string) bool {
	for _, k := range keys {
		if last, ok := g.touched[k]; ok && i-last < g.sep {
			return false
		}
	}
	return true
}

func (g *editor) touch(i int, keys ...string) {
	for _, k := range keys {
		g.touched[k] = i
	}
}

func uk(id string) string { return "u:" + id }
func dk(id int) string    { return "d:" + strconv.Itoa(id) }
func tk(id int) string    { return "t:" + strconv.Itoa(id) }

// step makes one edit (retrying other kinds when the drawn one has no free entity).
func (g *editor) step(t *testing.T, i int) {
	t.Helper()
	if g.made == nil {
		g.made = map[string]int{}
	}
	st := g.w.emu.Directory().Snapshot()
	var users []*emulator.User
	for _, u := range st.Users {
		if g.free(i, uk(u.UserID)) {
			users = append(users, u)
		}
	}
	var depts []emulator.Department
	for _, d := range st.Departments {
		if g.free(i, dk(d.ID)) {
			depts = append(depts, d)
		}
	}
	pickUser := func() *emulator.User {
		if len(users) == 0 {
			return nil
		}
		return users[g.rng.IntN(len(users))]
	}
	pickDept := func() (emulator.Department, bool) {
		if len(depts) == 0 {
			return emulator.Department{}, false
		}
		return depts[g.rng.IntN(len(depts))], true
	}
	for attempt := 0; attempt < 20; attempt++ {
		kind := g.rng.IntN(100)
		switch {
		case kind < 22: // create a member in one or two departments
			d1, ok1 := pickDept()
			d2, ok2 := pickDept()
			if !ok1 {
				continue
			}
			g.next++
			id := fmt.Sprintf("conv%05d", g.next)
			deps, leaders := []int{d1.ID}, []int{g.rng.IntN(2)}
			if ok2 && d2.ID != d1.ID {
				deps, leaders = append(deps, d2.ID), append(leaders, g.rng.IntN(2))
			}
			body := map[string]any{"userid": id, "name": "成员" + id, "department": deps, "is_leader_in_dept": leaders,
				"email": id + "@conv.example", "mobile": fmt.Sprintf("137%08d", g.next), "position": "p" + strconv.Itoa(g.rng.IntN(9)),
				"gender": strconv.Itoa(1 + g.rng.IntN(2))}
			if g.ok(t, "user/create", body) {
				g.touch(i, uk(id))
				for _, d := range deps {
					g.touch(i, dk(d))
				}
				g.made["create_user"]++
				return
			}
		case kind < 38: // rename, retitle
			u := pickUser()
			if u == nil {
				continue
			}
			body := map[string]any{"userid": u.UserID, "name": "改名" + strconv.Itoa(i)}
			if g.rng.IntN(2) == 0 {
				body["position"] = "职位" + strconv.Itoa(i)
			}
			if g.rng.IntN(3) == 0 {
				body["alias"] = "a" + strconv.Itoa(i)
			}
			if g.ok(t, "user/update", body) {
				g.touch(i, uk(u.UserID))
				g.made["rename_user"]++
				return
			}
		case kind < 53: // move to other departments, with leader flags
			u := pickUser()
			d1, ok1 := pickDept()
			d2, ok2 := pickDept()
			if u == nil || !ok1 {
				continue
			}
			deps, leaders := []int{d1.ID}, []int{g.rng.IntN(2)}
			if ok2 && d2.ID != d1.ID {
				deps, leaders = append(deps, d2.ID), append(leaders, g.rng.IntN(2))
			}
			if g.ok(t, "user/update", map[string]any{"userid": u.UserID, "department": deps, "is_leader_in_dept": leaders}) {
				g.touch(i, uk(u.UserID))
				for _, d := range append(deps, u.Departments...) {
					g.touch(i, dk(d))
				}
				g.made["move_user"]++
				return
			}
		case kind < 58: // new userid
			u := pickUser()
			if u == nil {
				continue
			}
			g.next++
			id := fmt.Sprintf("conv%05d", g.next)
			if g.ok(t, "user/update", map[string]any{"userid": u.UserID, "new_userid": id}) {
				g.touch(i, uk(u.UserID), uk(id))
				g.made["rename_userid"]++
				return
			}
		case kind < 67: // delete a member
			u := pickUser()
			if u == nil {
				continue
			}
			if g.ok(t, "user/delete?userid="+u.UserID, nil) {
				g.touch(i, uk(u.UserID))
				for _, d := range u.Departments {
					g.touch(i, dk(d))
				}
				g.made["delete_user"]++
				return
			}
		case kind < 75: // create a department
			p, ok := pickDept()
			if !ok {
				continue
			}
			g.next++
			id := 5000 + g.next
			if g.ok(t, "department/create", map[string]any{"name": "部门" + strconv.Itoa(id), "parentid": p.ID, "id": id}) {
				g.touch(i, dk(id), dk(p.ID))
				g.made["create_party"]++
				return
			}
		case kind < 80: // move a department (WeCom refuses cycles and depth past 15)
			d, ok := pickDept()
			p, ok2 := pickDept()
			if !ok || !ok2 || d.ID == 1 || d.ID == p.ID {
				continue
			}
			if g.ok(t, "department/update", map[string]any{"id": d.ID, "parentid": p.ID}) {
				g.touch(i, dk(d.ID), dk(p.ID), dk(d.ParentID))
				g.made["move_party"]++
				return
			}
		case kind < 83: // rename a department
			d, ok := pickDept()
			if !ok || d.ID == 1 {
				continue
			}
			if g.ok(t, "department/update", map[string]any{"id": d.ID, "name": "新部门" + strconv.Itoa(i)}) {
				g.touch(i, dk(d.ID))
				g.made["rename_party"]++
				return
			}
		case kind < 88: // delete a department (only empty leaves can go)
			d, ok := pickDept()
			if !ok || d.ID == 1 {
				continue
			}
			if g.ok(t, "department/delete?id="+strconv.Itoa(d.ID), nil) {
				g.touch(i, dk(d.ID), dk(d.ParentID))
				g.made["delete_party"]++
				return
			}
		default: // tag members
			tag := 801 + g.rng.IntN(6)
			if !g.free(i, tk(tag)) {
				continue
			}
			var ul []string
			var pl []int
			for range 1 + g.rng.IntN(3) {
				if u := pickUser(); u != nil && !slices.Contains(ul, u.UserID) {
					ul = append(ul, u.UserID)
				}
			}
			if d, ok := pickDept(); ok && g.rng.IntN(2) == 0 {
				pl = append(pl, d.ID)
			}
			if len(ul) == 0 && len(pl) == 0 {
				continue
			}
			path := "tag/addtagusers"
			if g.rng.IntN(5) < 2 {
				path = "tag/deltagusers"
			}
			body := map[string]any{"tagid": tag, "userlist": ul}
			if len(pl) > 0 {
				body["partylist"] = pl
			}
			if g.ok(t, path, body) {
				g.touch(i, tk(tag))
				for _, u := range ul {
					g.touch(i, uk(u))
				}
				for _, d := range pl {
					g.touch(i, dk(d))
				}
				g.made[path]++
				return
			}
		}
	}
}

// ok makes an edit and reports whether WeCom accepted it (a refused edit, such as
// deleting a department that still has members, changes nothing and sends nothing).
func (g *editor) ok(t *testing.T, path string, body any) bool {
	t.Helper()
	return g.w.call(t, path, body, nil) == 0
}
