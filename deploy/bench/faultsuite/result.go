package main

import (
	"sort"
	"time"
)

// faultResult is what one fault's clients saw through one engine.
type faultResult struct {
	Fault    fault          `json:"fault"`
	Requests int            `json:"requests"`
	Served   int            `json:"served"`
	Wrong    int            `json:"wrong"`
	Hangs    int            `json:"hangs"`
	Outcomes map[string]int `json:"outcomes"`      // status code or outcome label → count
	Reasons  map[string]int `json:"wrong_reasons"` // why answers were wrong
	Examples []string       `json:"examples"`      // a few wrong answers and hangs, described
	Longest  time.Duration  `json:"longest_wait"`  // of any exchange
	// Crossed counts answers that were wrong because extra bytes and the request crossed
	// on the wire, which no HTTP/1.1 proxy can prevent (see crossings); not failures.
	Crossed int `json:"crossed"`

	wrongs []wrongAnswer // until settle
}

// wrongAnswer is a wrong outcome and the id of the request it answered.
type wrongAnswer struct {
	id      string
	outcome outcome
}

// engineResult is one engine's run.
type engineResult struct {
	Engine   string        `json:"engine"`
	Deadline time.Duration `json:"deadline"` // per exchange
	Before   procSample    `json:"before"`
	After    procSample    `json:"after"`
	Faults   []faultResult `json:"faults"`
	Elapsed  time.Duration `json:"elapsed"`
}

// failures counts wrong answers and hangs over every fault.
func (r engineResult) failures() (wrong, hangs int) {
	for _, f := range r.Faults {
		wrong += f.Wrong
		hangs += f.Hangs
	}
	return wrong, hangs
}

const maxExamples = 4

// record adds one outcome of request id to the tally. Wrong answers wait for settle.
func (fr *faultResult) record(id string, o outcome, took time.Duration) {
	fr.Requests++
	fr.Longest = max(fr.Longest, took)
	switch o.label {
	case outWrong:
		fr.wrongs = append(fr.wrongs, wrongAnswer{id: id, outcome: o})
		return
	case outHang:
		fr.Hangs++
		fr.example(o)
	}
	fr.Outcomes[o.label]++
	if o.served {
		fr.Served++
	}
}

func (fr *faultResult) example(o outcome) {
	if len(fr.Examples) < maxExamples {
		fr.Examples = append(fr.Examples, o.label+": "+o.detail)
	}
}

// settle counts the wrong answers, once every backend has seen every request: those to a
// request that crossed extra bytes on the wire are counted as crossed, the rest as wrong.
func (fr *faultResult) settle(cr *crossings) {
	for _, w := range fr.wrongs {
		if cr.crossed(w.id) {
			fr.Crossed++
			fr.Outcomes[outCrossed]++
			continue
		}
		fr.Wrong++
		fr.Outcomes[outWrong]++
		fr.Reasons[w.outcome.reason]++
		o := w.outcome
		o.detail += "; " + cr.explain(w.id)
		fr.example(o)
	}
	fr.wrongs = nil
}

// sortedKeys returns m's keys, most frequent first.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
