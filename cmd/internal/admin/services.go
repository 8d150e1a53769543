package admin

import (
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/file"
)

// ServiceEndpointRequest is the body of PUT /v1/services/{service}/endpoints/{id}: the
// endpoint as the services file lists it (the ID comes from the path).
type ServiceEndpointRequest struct {
	Address string            `json:"address"`
	Weight  int               `json:"weight,omitempty"`
	Health  string            `json:"health,omitempty"`
	Zone    string            `json:"zone,omitempty"`
	Tags    []string          `json:"tags,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// ServiceEditView is the answer of a services-file edit.
type ServiceEditView struct {
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
	// Action is "created", "replaced" or "deleted".
	Action string `json:"action"`
	// Note says when the change takes effect: the file's watcher applies it.
	Note string `json:"note"`
}

const editNote = "written to the services file; its watcher applies it within a couple of poll intervals"

// registryJob refuses a services edit when the source is a registry.
func (s *Server) registryJob(w http.ResponseWriter) bool {
	if s.opts.Services != nil {
		return false
	}
	writeError(w, http.StatusConflict, "endpoints come from "+s.opts.Discovery+": adding and removing them is the registry's job",
		"register or deregister the instance in "+s.opts.Discovery+"; to take one out of ringside's routing now, POST /v1/upstreams/{name}/endpoints/{id}/drain")
	return true
}

func (s *Server) putServiceEndpoint(w http.ResponseWriter, r *http.Request) {
	if s.registryJob(w) {
		return
	}
	var req ServiceEndpointRequest
	if !decodeBody(w, r, &req, maxControlBody) {
		return
	}
	svc, id := r.PathValue("service"), r.PathValue("id")
	e := discovery.Endpoint{ID: id, Address: req.Address, Weight: req.Weight, Zone: req.Zone, Tags: req.Tags, Meta: req.Meta}
	if e.Weight == 0 {
		e.Weight = 1
	}
	h, err := discovery.ParseHealth(req.Health)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad health "+quote(req.Health), "passing, warning or critical (default passing)")
		return
	}
	e.Health = h
	if err := e.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "address host:port with a port in 1..65535, weight 1..65535")
		return
	}
	created, err := s.opts.Services.Put(svc, e)
	if err != nil {
		s.editError(w, err)
		return
	}
	action := "replaced"
	if created {
		action = "created"
	}
	s.servicesEdited(r, svc, id, action)
	writeJSON(w, http.StatusOK, ServiceEditView{Service: svc, Endpoint: id, Action: action, Note: editNote})
}

func (s *Server) deleteServiceEndpoint(w http.ResponseWriter, r *http.Request) {
	if s.registryJob(w) {
		return
	}
	svc, id := r.PathValue("service"), r.PathValue("id")
	found, err := s.opts.Services.Delete(svc, id)
	if err != nil {
		s.editError(w, err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "service "+quote(svc)+" has no endpoint "+quote(id)+" in the services file", "an endpoint id (or address, when it has no id) listed under the service")
		return
	}
	s.servicesEdited(r, svc, id, "deleted")
	writeJSON(w, http.StatusOK, ServiceEditView{Service: svc, Endpoint: id, Action: "deleted", Note: editNote})
}

func (s *Server) servicesEdited(r *http.Request, svc, id, action string) {
	s.log.Info("services file edited", zap.String("service", svc), zap.String("endpoint", id),
		zap.String("action", action), zap.String("remote", r.RemoteAddr))
	s.opts.Events.Record(Event{Time: time.Now(), Kind: "service_edit", Endpoint: id, Reason: action + " in service " + svc})
}

func (s *Server) editError(w http.ResponseWriter, err error) {
	if errors.Is(err, file.ErrEdit) {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	s.log.Error("services file edit failed", zap.Error(err))
	writeError(w, http.StatusInternalServerError, err.Error(), "")
}
