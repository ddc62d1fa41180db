package status

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLaneCovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filters     []string
		covers, own bool
	}{
		{nil, true, false},
		{[]string{">"}, true, false},
		{[]string{"wecom.>"}, true, false},
		{[]string{"wecom.events.>"}, true, false},
		{[]string{"wecom.events.*.>"}, true, false},
		{[]string{"wecom.events.wwA.>"}, true, true},
		{[]string{"wecom.events.wwA.change_contact.*"}, true, true},
		{[]string{"wecom.events.wwA.batch_job_result", "wecom.events.wwA.change_contact.>"}, true, true},
		{[]string{"wecom.events.wwA.>", "wecom.events.wwB.>"}, true, false},
		{[]string{"wecom.events.wwB.>"}, false, false},
		{[]string{"wecom.events.wwA"}, false, false},
		{[]string{"other.>"}, false, false},
	} {
		covers, own := laneCovers(tc.filters, "wwA")
		require.Equal(t, tc.covers, covers, "%v covers", tc.filters)
		require.Equal(t, tc.own, own, "%v own", tc.filters)
	}
}

func TestLagOf(t *testing.T) {
	t.Parallel()
	shared := Lane{Name: "wecomsync-mirror", Filters: []string{"wecom.events.>"}, Pending: 40, AckPending: 10}
	own := Lane{Name: "wecomsync-mirror-wwA", Filters: []string{"wecom.events.wwA.>"}, Pending: 3, AckPending: 1}
	newest := &StreamEvent{StreamSeq: 100}

	t.Run("UpToDateWithoutEventsInTheStream", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, LagUpToDate, lagOf("wwA", nil, nil, []Lane{shared}, true).State)
	})
	t.Run("UpToDateWhenTheLaneIsAtTheNewestEvent", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, LagUpToDate, lagOf("wwA", &Applied{StreamSeq: 100}, newest, []Lane{shared}, true).State)
	})
	t.Run("SharedLaneGivesTheSmallerUpperBound", func(t *testing.T) {
		t.Parallel()
		l := lagOf("wwA", &Applied{StreamSeq: 90}, newest, []Lane{shared}, true)
		require.Equal(t, Lag{State: LagBehind, Events: 10, Basis: l.Basis}, l) // distance 10 < pending 50
		l = lagOf("wwA", &Applied{StreamSeq: 10}, newest, []Lane{shared}, true)
		require.Equal(t, uint64(50), l.Events) // pending 50 < distance 90
		require.False(t, l.Exact)
	})
	t.Run("OwnLaneIsExact", func(t *testing.T) {
		t.Parallel()
		l := lagOf("wwA", &Applied{StreamSeq: 10}, newest, []Lane{shared.without("wwA"), own}, true)
		require.Equal(t, Lag{State: LagBehind, Events: 4, Exact: true, Basis: l.Basis}, l)
	})
	t.Run("NoLaneMeansTheDistance", func(t *testing.T) {
		t.Parallel()
		l := lagOf("wwA", &Applied{StreamSeq: 60}, newest, nil, true)
		require.Equal(t, uint64(40), l.Events)
		require.Contains(t, l.Basis, "no lane receives this corp")
	})
	t.Run("UnreadableLanesMeanTheDistance", func(t *testing.T) {
		t.Parallel()
		l := lagOf("wwA", nil, newest, []Lane{own}, false)
		require.Equal(t, uint64(100), l.Events)
		require.False(t, l.Exact)
	})
}

// without returns l receiving another corp only (so it does not cover corpID).
func (l Lane) without(corpID string) Lane {
	l.Filters = []string{"wecom.events.not" + corpID + ".>"}
	return l
}
