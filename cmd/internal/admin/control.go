package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/proxy/balancer"
)

// The runtime controls: every one needs the bearer token (guard). Each answers with the
// endpoint as GET .../endpoints shows it after the change, in a ControlView.

// ControlView is the answer of a control that succeeded.
type ControlView struct {
	Upstream string `json:"upstream"`
	Endpoint string `json:"endpoint"`
	// Action is "drain", "undrain", "eject", "return", "weight", "clear_weight" or
	// "clear_overrides".
	Action string `json:"action"`
	// Changed is false when there was nothing to do (undraining an endpoint not drained,
	// clearing no override).
	Changed bool `json:"changed"`
	// State is the endpoint after the change; null when it is not in the current snapshot.
	State *EndpointView `json:"state"`
}

// maxControlBody bounds the body of a control.
const maxControlBody = 4 << 10

// maxEjection bounds an operator's ejection.
const maxEjection = 7 * 24 * time.Hour

// control runs f on the request's upstream and endpoint and answers with the result.
func (s *Server) control(w http.ResponseWriter, r *http.Request, action string, f func(u Upstream, id string) (bool, error)) {
	u, ok := s.upstream(w, r, r.PathValue("name"))
	if !ok {
		return
	}
	id := r.PathValue("id")
	changed, err := f(u, id)
	if err != nil {
		s.controlError(w, u, id, err)
		return
	}
	s.log.Info("admin control", zap.String("action", action), zap.String("upstream", u.Config.Name),
		zap.String("endpoint", id), zap.String("remote", r.RemoteAddr))
	out := ControlView{Upstream: u.Config.Name, Endpoint: id, Action: action, Changed: changed}
	for _, ev := range s.endpointsViewOf(u, true).Endpoints {
		if ev.ID == id {
			out.State = &ev
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) controlError(w http.ResponseWriter, u Upstream, id string, err error) {
	switch {
	case errors.Is(err, balancer.ErrUnknownEndpoint):
		var ids []string
		for _, e := range u.Balancer.Endpoints() {
			ids = append(ids, e.ID)
		}
		writeError(w, http.StatusNotFound, "upstream "+quote(u.Config.Name)+" has no endpoint "+quote(id), "one of: "+list(ids))
	case errors.Is(err, balancer.ErrBadOverride):
		writeError(w, http.StatusBadRequest, err.Error(), "")
	default:
		writeError(w, http.StatusInternalServerError, err.Error(), "")
	}
}

// durationParam reads query parameter name as a Go duration ("30s", "5m"); def when absent.
func durationParam(w http.ResponseWriter, r *http.Request, name string, def time.Duration, lo, hi time.Duration) (time.Duration, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		writeError(w, http.StatusBadRequest, "bad "+name+" "+quote(v),
			"a duration from "+lo.String()+" to "+hi.String()+", e.g. 30s or 5m")
		return 0, false
	}
	return d, true
}

// postDrain: POST .../drain[?keep_keys=DURATION].
func (s *Server) postDrain(w http.ResponseWriter, r *http.Request) {
	keep, ok := durationParam(w, r, "keep_keys", 0, 0, maxEjection)
	if !ok {
		return
	}
	s.control(w, r, "drain", func(u Upstream, id string) (bool, error) {
		return true, u.Balancer.Drain(id, keep)
	})
}

// postUndrain: POST .../undrain.
func (s *Server) postUndrain(w http.ResponseWriter, r *http.Request) {
	s.control(w, r, "undrain", func(u Upstream, id string) (bool, error) {
		was := drained(u, id)
		return was, u.Balancer.Undrain(id)
	})
}

func drained(u Upstream, id string) bool {
	for _, e := range u.Balancer.Endpoints() {
		if e.ID == id {
			return e.Status().Drained
		}
	}
	return false
}

// postEject: POST .../eject?for=DURATION.
func (s *Server) postEject(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("for") == "" {
		writeError(w, http.StatusBadRequest, "missing for", "for=DURATION from 1s to "+maxEjection.String()+", e.g. eject?for=5m")
		return
	}
	d, ok := durationParam(w, r, "for", 0, time.Second, maxEjection)
	if !ok {
		return
	}
	s.control(w, r, "eject", func(u Upstream, id string) (bool, error) {
		return true, u.Balancer.Eject(id, d)
	})
}

// postReturn: POST .../return ends an ejection now.
func (s *Server) postReturn(w http.ResponseWriter, r *http.Request) {
	s.control(w, r, "return", func(u Upstream, id string) (bool, error) {
		return true, u.Balancer.EndEjection(id)
	})
}

// WeightRequest is the body of POST .../weight (or ?weight=N).
type WeightRequest struct {
	Weight int `json:"weight"`
}

// postWeight: POST .../weight with {"weight": N} or ?weight=N.
func (s *Server) postWeight(w http.ResponseWriter, r *http.Request) {
	allowed := "weight=N or a body {\"weight\": N}, N from 1 to " + strconv.Itoa(balancer.MaxWeight) + "; DELETE .../weight clears it"
	var req WeightRequest
	if v := r.URL.Query().Get("weight"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad weight "+quote(v), allowed)
			return
		}
		req.Weight = n
	} else if r.ContentLength != 0 && !decodeBody(w, r, &req, maxControlBody) {
		return
	}
	if req.Weight < 1 || req.Weight > balancer.MaxWeight {
		writeError(w, http.StatusBadRequest, "bad weight "+strconv.Itoa(req.Weight), allowed)
		return
	}
	s.control(w, r, "weight", func(u Upstream, id string) (bool, error) {
		return true, u.Balancer.SetWeight(id, req.Weight)
	})
}

// deleteWeight: DELETE .../weight.
func (s *Server) deleteWeight(w http.ResponseWriter, r *http.Request) {
	s.control(w, r, "clear_weight", func(u Upstream, id string) (bool, error) {
		return true, u.Balancer.ClearWeight(id)
	})
}

// deleteOverrides: DELETE /v1/upstreams/{name}/overrides/{id} clears every override of the
// endpoint, present or not.
func (s *Server) deleteOverrides(w http.ResponseWriter, r *http.Request) {
	s.control(w, r, "clear_overrides", func(u Upstream, id string) (bool, error) {
		return u.Balancer.ClearOverrides(id)
	})
}
