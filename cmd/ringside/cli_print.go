package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
)

// The tables the operator commands print for people; -o json prints the API's JSON instead.

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// rate formats a rate that may be unknown.
func rate(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func printStatus(w io.Writer, v admin.UpstreamsView) {
	t := table(w)
	fmt.Fprintln(t, "UPSTREAM\tLISTEN\tBALANCER\tHASH KEY\tENDPOINTS\tEJECTED\tDRAINED\tPANIC\tREQ/S\t5XX\tSNAPSHOT")
	for _, u := range v.Upstreams {
		snap := "none yet"
		if u.Snapshot != nil {
			snap = fmt.Sprintf("rev %d, %s old", u.Snapshot.Revision, time.Duration(u.Snapshot.AgeSeconds*float64(time.Second)).Round(time.Second))
		}
		e := u.Endpoints
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%d/%d healthy\t%d\t%d\t%v\t%s\t%s\t%s\n", u.Name, orDash(u.Listen), u.Balancer,
			orDash(strings.Join(u.HashKey, ",")), e.Healthy+e.Warming, e.Total, e.Ejected+e.ActiveUnhealthy, e.Drained,
			yesNo(u.Panic), rate(u.Traffic.RequestsPerSecond, "%.1f"), rate(u.Traffic.ErrorRate, "%.1f%%"), snap)
	}
	_ = t.Flush()
}

func printEndpoints(w io.Writer, v admin.EndpointsView) {
	if v.Panic {
		fmt.Fprintf(w, "%s is in PANIC MODE: too few healthy endpoints, ejections are ignored\n", v.Upstream)
	}
	t := table(w)
	fmt.Fprintln(t, "ENDPOINT\tADDRESS\tZONE\tSTATE\tWEIGHT\tIN FLIGHT\tREQUESTS\t5XX\tKEY SHARE (NOW/TABLE)\tNOTES")
	for _, e := range v.Endpoints {
		share := "-"
		if e.KeyShare != nil {
			share = fmt.Sprintf("%.1f%% / %.1f%%", 100*e.KeyShare.Now, 100*e.KeyShare.Table)
		}
		weight := fmt.Sprint(e.Weight)
		if e.Weight != e.RegistryWeight {
			weight = fmt.Sprintf("%d (registry %d)", e.Weight, e.RegistryWeight)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%s\t%s\n", e.ID, e.Address, orDash(e.Zone), e.State, weight,
			e.InFlight, e.Requests, e.Errors5xx, share, notes(e))
	}
	_ = t.Flush()
}

// notes sums up what is special about an endpoint.
func notes(e admin.EndpointView) string {
	var n []string
	if e.RegistryHealth != "passing" {
		n = append(n, "registry: "+e.RegistryHealth)
	}
	if e.Drained {
		s := "drained"
		if e.DrainKeepKeysUntil != nil {
			s += fmt.Sprintf(", keeps its keys for %s", time.Until(*e.DrainKeepKeysUntil).Round(time.Second))
		}
		n = append(n, s)
	}
	if j := e.Ejection; j != nil {
		n = append(n, fmt.Sprintf("ejected (%s), %s left", j.Reason, time.Duration(j.SecondsLeft*float64(time.Second)).Round(time.Second)))
	}
	if e.ActiveUnhealthy {
		n = append(n, "failing active checks")
	}
	if e.WarmFraction < 1 {
		n = append(n, fmt.Sprintf("warming up, at %.0f%%", 100*e.WarmFraction))
	}
	if f := e.LastFailure; f != nil {
		n = append(n, fmt.Sprintf("last failure %s ago: %s", time.Since(f.At).Round(time.Second), f.What))
	}
	return orDash(strings.Join(n, "; "))
}

func printRoute(w io.Writer, v admin.RouteView) {
	key := "no key"
	switch {
	case v.Key.Found && v.Key.Source == "given":
		key = fmt.Sprintf("key %q, hash %s", v.Key.Value, orDash(v.Hash))
	case v.Key.Found:
		key = fmt.Sprintf("key %q from %s, hash %s", v.Key.Value, v.Key.Source, orDash(v.Hash))
	}
	fmt.Fprintf(w, "upstream %s (%s): %s\n", v.Upstream, v.Balancer, key)
	for _, s := range v.Sources {
		status := "absent"
		if s.Present {
			status = fmt.Sprintf("%q", s.Value)
		}
		if s.Used {
			status += "  <- used"
		}
		fmt.Fprintf(w, "  source %-24s %s\n", s.Source, status)
	}
	if v.Home != "" {
		fmt.Fprintf(w, "home on the table: %s\n", v.Home)
	}
	if v.Panic {
		fmt.Fprintln(w, "PANIC MODE: ejections are ignored")
	}
	printWalk(w, "walk", v.Walk)
	fmt.Fprintf(w, "target:   %s\n", endpointOr(v.Target, v.Error))
	if v.Target == nil {
		return
	}
	printWalk(w, "then", v.FallbackWalk)
	fb := endpointOr(v.Fallback, v.FallbackError)
	if v.FallbackPanics {
		fb += " (but taking the target out would put the upstream in panic mode)"
	}
	fmt.Fprintf(w, "fallback: %s, if %s is ejected or drained\n", fb, v.Target.ID)
}

func printWalk(w io.Writer, title string, steps []admin.StepView) {
	if len(steps) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	t := table(w)
	for _, s := range steps {
		what := "passed over: " + s.Reason
		switch {
		case s.Taken && s.Reason == "":
			what = "taken"
		case s.Taken:
			what = "taken (" + s.Reason + ")"
		}
		fmt.Fprintf(t, "  %s\t%s\t%s\n", s.Endpoint, s.State, what)
	}
	_ = t.Flush()
}

func endpointOr(t *admin.TargetView, err string) string {
	if t == nil {
		return "none: " + err
	}
	return fmt.Sprintf("%s (%s, %s)", t.ID, t.Address, t.State)
}

func printControl(w io.Writer, v admin.ControlView) {
	did := v.Action
	if !v.Changed {
		did += ": nothing to change"
	}
	fmt.Fprintf(w, "%s/%s: %s\n", v.Upstream, v.Endpoint, did)
	if v.State != nil {
		printEndpoints(w, admin.EndpointsView{Upstream: v.Upstream, Endpoints: []admin.EndpointView{*v.State}})
	}
}

func printEvents(w io.Writer, v admin.EventsView) {
	t := table(w)
	fmt.Fprintln(t, "SEQ\tTIME\tKIND\tUPSTREAM\tENDPOINT\tDETAIL")
	for _, e := range v.Events {
		var d []string
		if e.Reason != "" {
			d = append(d, e.Reason)
		}
		if e.DurationSeconds > 0 {
			d = append(d, time.Duration(e.DurationSeconds*float64(time.Second)).String())
		}
		if e.Kind == "weight" {
			d = append(d, fmt.Sprintf("weight %d", e.Weight))
		}
		if e.Kind == "snapshot" {
			d = append(d, fmt.Sprintf("revision %d, +%s -%s", e.Revision, strings.Join(e.Added, ","), strings.Join(e.Removed, ",")))
		}
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("15:04:05"), e.Kind, orDash(e.Upstream),
			orDash(e.Endpoint), strings.Join(d, "; "))
	}
	_ = t.Flush()
}

func printOverrides(w io.Writer, v admin.OverridesView) {
	t := table(w)
	fmt.Fprintln(t, "UPSTREAM\tENDPOINT\tPRESENT\tDRAINED\tEJECTED UNTIL\tWEIGHT")
	for _, o := range v.Overrides {
		drained, until, weight := "no", "-", "-"
		if o.Drained {
			drained = "yes"
			if o.KeepKeysUntil != nil {
				drained += fmt.Sprintf(", keeps its keys until %s", o.KeepKeysUntil.Local().Format("15:04:05"))
			}
		}
		if o.EjectedUntil != nil {
			until = o.EjectedUntil.Local().Format("15:04:05")
		}
		if o.Weight > 0 {
			weight = fmt.Sprintf("%d (registry %d)", o.Weight, o.RegistryWeight)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", o.Upstream, o.Endpoint, yesNo(o.Present), drained, until, weight)
	}
	_ = t.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "no"
}
