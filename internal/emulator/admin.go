package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Stats is the answer of GET /admin/stats.
type Stats struct {
	APICalls             int64            `json:"api_calls"`
	APIErrors            map[string]int64 `json:"api_errors"` // errcode -> count
	Callbacks            CallbackStats    `json:"callbacks"`
	CallbackVerification string           `json:"callback_verification"`
	Users                int              `json:"users"`
	Departments          int              `json:"departments"`
	Tags                 int              `json:"tags"`
}

// Stats returns API and callback counters and directory sizes.
func (s *Server) Stats() Stats {
	st := Stats{APICalls: s.calls.Load(), APIErrors: map[string]int64{}, Callbacks: s.CallbackStats(),
		CallbackVerification: s.CallbackVerification()}
	s.errMu.Lock()
	for code, n := range s.errs {
		st.APIErrors[strconv.Itoa(code)] = n
	}
	s.errMu.Unlock()
	s.dir.mu.RLock()
	st.Users, st.Departments, st.Tags = len(s.dir.users), len(s.dir.depts), len(s.dir.tags)
	s.dir.mu.RUnlock()
	return st
}

// adminRoutes registers the emulator's own endpoints (no token):
//
//	GET  /healthz                  "ok"
//	GET  /admin/state              the main corp's State (see State); ?corp=linked for the linked corp
//	GET  /admin/stats              Stats
//	GET  /admin/faults             the current Faults
//	POST /admin/faults             merge a JSON Faults object into the current one (omitted fields kept)
//	POST /admin/tokens/expire      expire every token (42001); ?mode=invalidate for 40014
//	POST /admin/state/save         save the state file now (404 without -state)
//	POST /admin/callback/verify    run the GET URL verification again
func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /admin/state", func(w http.ResponseWriter, r *http.Request) {
		d := s.dir
		if r.URL.Query().Get("corp") == "linked" {
			if s.linked == nil {
				http.Error(w, "no linked corp configured", http.StatusNotFound)
				return
			}
			d = s.linked
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(d.Snapshot())
	})
	mux.HandleFunc("GET /admin/stats", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, s.Stats())
	})
	mux.HandleFunc("GET /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, s.Faults())
	})
	mux.HandleFunc("POST /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		f := s.Faults()
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			http.Error(w, "decoding faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.SetFaults(f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.log.InfoContext(r.Context(), "faults changed", "faults", f)
		s.writeJSON(w, f)
	})
	mux.HandleFunc("POST /admin/tokens/expire", func(w http.ResponseWriter, r *http.Request) {
		n := s.ExpireTokens(r.URL.Query().Get("mode") == "invalidate")
		s.writeJSON(w, map[string]int{"expired": n})
	})
	mux.HandleFunc("POST /admin/state/save", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.StatePath == "" {
			http.Error(w, "no state file configured", http.StatusNotFound)
			return
		}
		if err := s.dir.SaveFile(s.cfg.StatePath); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.writeJSON(w, map[string]string{"saved": s.cfg.StatePath})
	})
	mux.HandleFunc("POST /admin/callback/verify", func(w http.ResponseWriter, r *http.Request) {
		if err := s.VerifyCallbackURL(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		s.writeJSON(w, map[string]string{"callback_verification": "ok"})
	})
}
