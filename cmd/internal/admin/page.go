package admin

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The status page: GET / on the admin server. The server renders it whole with html/template
// (which escapes endpoint IDs, tags and event text, all of which come from the registry); its
// script and style are inlined from page.js and page.css and allowed by their hashes in a
// Content-Security-Policy that forbids every other script, style, frame, form target and load
// from elsewhere, so the page works on an air-gapped node and a registry entry cannot run
// code in it. Every few seconds the script fetches GET /?part=live, the same template's live
// section (upstreams, endpoints, events) alone, and swaps it in: no full-page reload.
//
// The script calls the JSON API for the route box (GET /v1/route) and the drain, undrain,
// eject and return buttons; it asks for the admin token in a dialog, keeps it in memory or,
// if asked to, in sessionStorage (never a cookie, never localStorage) and sends it as a
// bearer header.

// pageRefresh is how often the page refreshes its live section.
const pageRefresh = 3 * time.Second

// pageEvents is how many of the newest events the page shows.
const pageEvents = 25

var (
	//go:embed page.html
	pageHTML string
	//go:embed page.js
	pageJS string
	//go:embed page.css
	pageCSS string
)

// pageAssets is the parsed template and the header that allows its inline script and style.
type pageAssets struct {
	tmpl *template.Template
	csp  string
}

// newPageAssets parses the page's template; it fails only on a broken template (a bug).
func newPageAssets() (*pageAssets, error) {
	funcs := template.FuncMap{
		"pct":         func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) },
		"rate":        formatRate,
		"ratio":       formatRatio,
		"count":       func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) },
		"clock":       func(t time.Time) string { return t.UTC().Format("15:04:05") },
		"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"secs":        formatSeconds,
		"bar":         func(f float64) string { return strconv.FormatFloat(100*min(max(f, 0), 1), 'f', 2, 64) },
		"eventDetail": eventDetail,
		"js":          func() template.JS { return template.JS(pageJS) },
		"css":         func() template.CSS { return template.CSS(pageCSS) },
	}
	tmpl, err := template.New("page").Funcs(funcs).Parse(pageHTML)
	if err != nil {
		return nil, fmt.Errorf("status page template: %w", err)
	}
	csp := "default-src 'none'; script-src " + cspHash(pageJS) + "; style-src " + cspHash(pageCSS) +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return &pageAssets{tmpl: tmpl, csp: csp}, nil
}

// pageOnce parses the page once for the process; the result is never changed.
var pageOnce = sync.OnceValues(newPageAssets)

func (s *Server) page() (*pageAssets, error) { return pageOnce() }

// cspHash is the CSP source that allows an inline element whose text is s.
func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// pageView is what the template renders.
type pageView struct {
	Now       time.Time
	RefreshMS int64
	// CanChange: a token file is configured, so the buttons can work.
	CanChange bool
	Upstreams []pageUpstream
	Events    []Event
	// EventsTotal is the Seq of the newest event (how many were ever recorded).
	EventsTotal uint64
}

// pageUpstream is one upstream and its endpoints.
type pageUpstream struct {
	UpstreamView
	ShareSamples int
	// Rows are its endpoints (Endpoints, of UpstreamView, counts them by state).
	Rows []pageEndpoint
}

// pageEndpoint is one endpoint row, with its request rate (nil until two readings of the
// counters are far enough apart).
type pageEndpoint struct {
	EndpointView
	RequestsPerSecond *float64
	// Actions are the buttons of the row: drain or undrain, eject or return.
	Actions []string
}

// pageData gathers what the page shows, from the views the JSON API answers.
func (s *Server) pageData() pageView {
	cur, base := s.rates.read()
	v := pageView{Now: time.Now(), RefreshMS: pageRefresh.Milliseconds(), CanChange: s.opts.TokenFile != ""}
	for _, u := range s.opts.Sidecar.Upstreams() {
		ev := s.endpointsView(u)
		pu := pageUpstream{UpstreamView: s.upstreamView(u, cur, base), ShareSamples: ev.ShareSamples}
		for _, e := range ev.Endpoints {
			pe := pageEndpoint{EndpointView: e, Actions: []string{"drain", "eject"}}
			if e.Drained {
				pe.Actions[0] = "undrain"
			}
			if e.Ejection != nil {
				pe.Actions[1] = "return"
			}
			if base != nil {
				k := epKey{u.Config.Name, e.ID}
				if secs := cur.at.Sub(base.at).Seconds(); secs > 0 {
					pe.RequestsPerSecond = ptr((cur.epReqs[k] - base.epReqs[k]) / secs)
				}
			}
			pu.Rows = append(pu.Rows, pe)
		}
		v.Upstreams = append(v.Upstreams, pu)
	}
	v.Events, v.EventsTotal = s.opts.Events.Since(0, pageEvents)
	return v
}

// getPage answers GET / with the status page, and GET /?part=live with its live section.
func (s *Server) getPage(w http.ResponseWriter, r *http.Request) {
	assets, err := s.page()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	name := "page"
	switch part := r.URL.Query().Get("part"); part {
	case "":
	case "live":
		name = "live"
	default:
		http.Error(w, "unknown part "+quote(part)+": want live, or none for the whole page", http.StatusBadRequest)
		return
	}
	var buf bytes.Buffer
	if err := assets.tmpl.ExecuteTemplate(&buf, name, s.pageData()); err != nil {
		s.log.Error("status page not rendered", zap.Error(err))
		http.Error(w, "status page not rendered; see the sidecar's log", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", assets.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(buf.Bytes())
}

// formatRate formats a rate per second, "–" when there is none yet.
func formatRate(f *float64) string {
	if f == nil {
		return "–"
	}
	switch {
	case *f == 0:
		return "0"
	case *f < 10:
		return strconv.FormatFloat(*f, 'f', 1, 64)
	default:
		return strconv.FormatFloat(*f, 'f', 0, 64)
	}
}

// formatRatio formats a share as a percentage, "–" when there is none.
func formatRatio(f *float64) string {
	if f == nil {
		return "–"
	}
	return strconv.FormatFloat(100**f, 'f', 1, 64) + "%"
}

// formatSeconds formats a duration in seconds as 1h2m, 3m4s or 5s.
func formatSeconds(secs float64) string {
	d := time.Duration(secs * float64(time.Second)).Round(time.Second)
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
}

// eventDetail says what an event's fields other than its kind and endpoint say.
func eventDetail(e Event) string {
	var parts []string
	if e.Reason != "" {
		parts = append(parts, e.Reason)
	}
	if e.DurationSeconds > 0 {
		parts = append(parts, "for "+formatSeconds(e.DurationSeconds))
	}
	if e.Kind == "weight" {
		if e.Weight == 0 {
			parts = append(parts, "weight cleared")
		} else {
			parts = append(parts, "weight "+strconv.Itoa(e.Weight))
		}
	}
	if e.Revision != 0 {
		parts = append(parts, "revision "+strconv.FormatUint(e.Revision, 10))
	}
	if len(e.Added) > 0 {
		parts = append(parts, "added "+strings.Join(e.Added, ", "))
	}
	if len(e.Removed) > 0 {
		parts = append(parts, "removed "+strings.Join(e.Removed, ", "))
	}
	return strings.Join(parts, "; ")
}
