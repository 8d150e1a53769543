package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/hashring"
	"github.com/ringside-proxy/ringside/proxy/balancer"
	"github.com/ringside-proxy/ringside/proxy/hashkey"
)

// RouteRequest is the body of POST /v1/route: a key, or a whole request whose key the
// upstream's own hash-key chain finds.
type RouteRequest struct {
	Upstream string `json:"upstream"`
	// Key, when set, is routed as it is (as GET /v1/route?key= does); the request fields
	// below are then ignored.
	Key *string `json:"key,omitempty"`
	// Method (default GET) and Path (the request target, with its query: "/cart?uid=7";
	// default "/").
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Headers and Cookies of the request.
	Headers map[string]string `json:"headers,omitempty"`
	Cookies map[string]string `json:"cookies,omitempty"`
	// ClientIP is the address the request comes from (the peer of the connection); default
	// 127.0.0.1, the app beside the sidecar. X-Forwarded-For in Headers is believed only
	// from the upstream's trusted_proxies, as on the request path.
	ClientIP string `json:"client_ip,omitempty"`
}

// RouteView is what GET and POST /v1/route answer.
type RouteView struct {
	Upstream string `json:"upstream"`
	Balancer string `json:"balancer"`
	// Key is the key the request is routed by, and where it came from.
	Key KeyView `json:"key"`
	// Sources are the upstream's hash-key sources in order, with what each found in the
	// request (POST with a request only; empty otherwise). The first present one is used.
	Sources []SourceView `json:"sources"`
	// Hash is the key's 64-bit hash, 16 hex digits ("" without a key or for the key-blind
	// policies).
	Hash string `json:"hash"`
	// Home is the key's home endpoint on the hash table, whatever its state.
	Home  string `json:"home"`
	Panic bool   `json:"panic"`
	// Walk is the endpoints met up to the target, each with why it was passed over.
	Walk []StepView `json:"walk"`
	// Target is where the request lands now; null with Error saying why there is none.
	Target *TargetView `json:"target"`
	Error  string      `json:"error"`
	// Fallback is where it goes if Target is ejected or drained (and where a retry goes);
	// FallbackWalk the endpoints met after Target.
	FallbackWalk  []StepView  `json:"fallback_walk"`
	Fallback      *TargetView `json:"fallback"`
	FallbackError string      `json:"fallback_error"`
	// FallbackPanics: taking Target out would put the upstream in panic mode, where ejected
	// endpoints take traffic again; Fallback does not account for that.
	FallbackPanics bool `json:"fallback_panics"`
}

// KeyView is a request's routing key.
type KeyView struct {
	Found bool `json:"found"`
	// Source is the hash-key source that produced it ("header:X-User-ID", ...), or "given"
	// for a key passed as it is.
	Source string `json:"source"`
	Value  string `json:"value"`
}

// SourceView is one hash-key source and what it found.
type SourceView struct {
	Source  string `json:"source"`
	Present bool   `json:"present"`
	Value   string `json:"value"`
	Used    bool   `json:"used"`
}

// StepView is one endpoint of a walk.
type StepView struct {
	Endpoint string `json:"endpoint"`
	State    string `json:"state"`
	Taken    bool   `json:"taken"`
	// Reason it was passed over: "ejected", "active_unhealthy", "drained", "max_requests",
	// "bounded_load", "slow_start"; "last_resort" for one taken when nothing better was
	// left; "" for one taken at once.
	Reason string `json:"reason"`
}

// TargetView is an endpoint a request lands on.
type TargetView struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	State   string `json:"state"`
}

// getRoute answers GET /v1/route?upstream=NAME&key=KEY (no key: a request without one).
func (s *Server) getRoute(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := RouteRequest{Upstream: q.Get("upstream")}
	if q.Has("key") {
		k := q.Get("key")
		req.Key = &k
	}
	s.route(w, r, req)
}

// maxRouteBody bounds the body of POST /v1/route.
const maxRouteBody = 64 << 10

func (s *Server) postRoute(w http.ResponseWriter, r *http.Request) {
	var req RouteRequest
	if !decodeBody(w, r, &req, maxRouteBody) {
		return
	}
	s.route(w, r, req)
}

// decodeBody decodes r's JSON body into v, refusing unknown fields; it answers 400 and returns
// false when it cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error(),
			fmt.Sprintf("a JSON object of at most %d bytes with the fields documented in deploy/CONFIG.md", limit))
		return false
	}
	return true
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, req RouteRequest) {
	if req.Upstream == "" {
		writeError(w, http.StatusBadRequest, "missing upstream", "upstream=NAME (GET /v1/upstreams lists them)")
		return
	}
	u, ok := s.upstream(w, r, req.Upstream)
	if !ok {
		return
	}
	out := RouteView{Upstream: u.Config.Name, Balancer: string(u.Balancer.Config().Kind), Sources: []SourceView{}}
	var h uint64
	switch {
	case req.Key != nil:
		out.Key = KeyView{Found: *req.Key != "", Source: "given", Value: *req.Key}
		if out.Key.Found {
			h = hashring.HashString(*req.Key)
		}
	default:
		ctx, err := requestCtx(req)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error(),
				"method: an HTTP token; path: a request target starting with /; client_ip: an IP address")
			return
		}
		var found bool
		h, found = u.Keys.Hash(ctx)
		key, src, _ := u.Keys.Key(ctx, nil)
		out.Key = KeyView{Found: found, Value: string(key)}
		out.Sources = sources(u.Keys, ctx, src, found)
		for _, sv := range out.Sources {
			if sv.Used {
				out.Key.Source = sv.Source
			}
		}
	}
	x := u.Balancer.Explain(h, out.Key.Found)
	if x.Keyed {
		out.Hash = fmt.Sprintf("%016x", x.Hash)
	}
	out.Home, out.Panic = x.Home, x.Panic
	out.Walk, out.FallbackWalk = steps(x.Walk), steps(x.FallbackWalk)
	eps := map[string]*balancer.Endpoint{}
	for _, e := range u.Balancer.Endpoints() {
		eps[e.ID] = e
	}
	out.Target, out.Error = target(eps, x.Target, x.Err)
	out.Fallback, out.FallbackError = target(eps, x.Fallback, x.FallbackErr)
	out.FallbackPanics = x.FallbackPanics
	writeJSON(w, http.StatusOK, out)
}

// requestCtx builds the request of req as the request path would see it arrive.
func requestCtx(req RouteRequest) (*fasthttp.RequestCtx, error) {
	method, path := req.Method, req.Path
	if method == "" {
		method = http.MethodGet
	}
	if path == "" {
		path = "/"
	}
	if !validMethod(method) {
		return nil, fmt.Errorf("bad method %q", method)
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("bad path %q: want a request target starting with /", path)
	}
	ip := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	if req.ClientIP != "" {
		var err error
		if ip, err = netip.ParseAddr(req.ClientIP); err != nil {
			return nil, fmt.Errorf("bad client_ip %q", req.ClientIP)
		}
	}
	var fr fasthttp.Request
	fr.Header.SetMethod(method)
	fr.SetRequestURI(path)
	fr.Header.SetHost("ringside.route")
	names := make([]string, 0, len(req.Headers))
	for k := range req.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fr.Header.Set(k, req.Headers[k])
	}
	for k, v := range req.Cookies {
		fr.Header.SetCookie(k, v)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&fr, &net.TCPAddr{IP: ip.AsSlice(), Port: 1}, nil)
	return ctx, nil
}

func validMethod(m string) bool {
	for _, c := range m {
		if c < '!' || c > '~' || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return m != ""
}

// sources runs each source of keys on its own (an extractor of that one source, the same
// code) to say what each found; the one keys used is marked.
func sources(keys *hashkey.Extractor, ctx *fasthttp.RequestCtx, used hashkey.Source, found bool) []SourceView {
	out := []SourceView{}
	marked := false
	for _, sp := range keys.Specs() {
		one, err := hashkey.New([]hashkey.Spec{sp}, keys.Trusted())
		if err != nil {
			continue // cannot happen: keys was built from the same spec
		}
		v, _, ok := one.Key(ctx, nil)
		sv := SourceView{Source: sp.String(), Present: ok, Value: string(v)}
		if ok && found && !marked && sp.Source == used {
			sv.Used, marked = true, true
		}
		out = append(out, sv)
	}
	return out
}

func steps(in []balancer.Step) []StepView {
	out := make([]StepView, len(in))
	for i, st := range in {
		out[i] = StepView{Endpoint: st.Endpoint, State: st.State.String(), Taken: st.Taken, Reason: st.Reason}
	}
	return out
}

func target(eps map[string]*balancer.Endpoint, id string, err error) (*TargetView, string) {
	if err != nil {
		return nil, err.Error()
	}
	if id == "" {
		return nil, ""
	}
	t := &TargetView{ID: id}
	if e := eps[id]; e != nil {
		t.Address, t.State = e.Address, e.State().String()
	}
	return t, ""
}
