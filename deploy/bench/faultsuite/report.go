package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// describeTimeouts says which timeouts the run configured and which it only holds ringside to.
func describeTimeouts(t timeouts) string {
	s := fmt.Sprintf("dial %v + %d × response_header %v + body_idle %v + margin %v", t.dial, t.attempts, t.responseHeader, t.bodyIdle, t.margin)
	if t.writeBodyIdle {
		s += "; body_idle in the config"
	} else {
		s += "; body_idle not in the config (this ringside does not know it)"
	}
	if t.writeRequest && t.request > 0 {
		s += fmt.Sprintf("; request %v", t.request)
	}
	return s
}

// writeReport writes one engine's results as a Markdown table and the examples under it.
func writeReport(w io.Writer, r engineResult) {
	wrong, hangs := r.failures()
	verdict := "PASS"
	if wrong+hangs > 0 {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "## engine %s: %s (%d wrong answers, %d hangs) in %v\n\n", r.Engine, verdict, wrong, hangs, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "ringside RSS %d → %d KiB, open FDs %d → %d (before → after the load)\n\n", r.Before.RSSKiB, r.After.RSSKiB, r.Before.FDs, r.After.FDs)
	fmt.Fprintln(w, "| fault | requests | served | wrong | hangs | crossed | outcomes | longest wait |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---|---:|")
	for _, f := range r.Faults {
		var outs []string
		for _, k := range sortedKeys(f.Outcomes) {
			outs = append(outs, fmt.Sprintf("%s %d", k, f.Outcomes[k]))
		}
		wrongCell := fmt.Sprint(f.Wrong)
		if f.Wrong > 0 {
			var rs []string
			for _, k := range sortedKeys(f.Reasons) {
				rs = append(rs, fmt.Sprintf("%s %d", k, f.Reasons[k]))
			}
			wrongCell = fmt.Sprintf("**%d** (%s)", f.Wrong, strings.Join(rs, ", "))
		}
		hangCell := fmt.Sprint(f.Hangs)
		if f.Hangs > 0 {
			hangCell = fmt.Sprintf("**%d**", f.Hangs)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %d | %s | %v |\n", f.Fault, f.Requests, f.Served, wrongCell, hangCell, f.Crossed, strings.Join(outs, ", "), f.Longest.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	for _, f := range r.Faults {
		for _, e := range f.Examples {
			fmt.Fprintf(w, "- %s: %s\n", f.Fault, e)
		}
	}
	fmt.Fprintln(w)
}
