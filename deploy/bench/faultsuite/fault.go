package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// fault is one way a backend misbehaves. Each runs on its own backends behind its own
// upstream of ringside, so what one fault does to the endpoint pool shows in its own row.
type fault string

const (
	faultNone           fault = "well_behaved"
	faultSecondResp     fault = "second_response" // a complete extra response a moment after the real one
	faultHeadlessBody   fault = "body_on_head_204_304"
	faultUndercount     fault = "undercounted_length" // Content-Length smaller than the bytes sent
	faultStallHeadSmall fault = "stall_after_head_small"
	faultStallHeadBig   fault = "stall_after_head_large"
	faultStallMidBody   fault = "stall_mid_body"
	faultResetMidBody   fault = "reset_mid_body"
	faultSlowReader     fault = "slow_request_body_reader"
)

// allFaults is every fault, in report order.
var allFaults = []fault{
	faultNone, faultSecondResp, faultHeadlessBody, faultUndercount, faultStallHeadSmall,
	faultStallHeadBig, faultStallMidBody, faultResetMidBody, faultSlowReader,
}

// parseFaults reads a comma-separated list of faults; "all" is every one.
func parseFaults(s string) ([]fault, error) {
	if strings.TrimSpace(s) == "all" {
		return allFaults, nil
	}
	var out []fault
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		found := false
		for _, k := range allFaults {
			if string(k) == f {
				out, found = append(out, k), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("fault %q unknown: want all or some of %s", f, joinFaults(allFaults))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no faults in %q", s)
	}
	return out, nil
}

func joinFaults(fs []fault) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// Sizes: the event loop reads a response body of up to 16 KiB whole within the attempt and
// streams larger ones, so the faults that cut a body short use both sides of that line.
const (
	smallBody  = 4 << 10
	largeBody  = 64 << 10
	streamLine = 16 << 10
)

// request is one exchange a client sends and what it expects back.
type request struct {
	id      string
	method  string
	target  string
	bodyLen int // request body bytes (the pattern of id), sent with Content-Length
	// wantStatus and wantLen are the backend's answer to this request: its status, and the
	// body length it declares.
	wantStatus int
	wantLen    int
}

// nextRequest picks the next request of a client of fault f: half of them ask for the
// misbehaviour (path /fault...), the other half are plain requests, the ones most likely to
// be handed what a misbehaving exchange left behind.
func nextRequest(f fault, rng *rand.Rand, id string) request {
	plain := request{id: id, method: "GET", wantStatus: 200, wantLen: rng.IntN(200)}
	if rng.IntN(4) == 0 {
		plain.wantLen = 40 << 10 // a streamed response
	}
	plain.target = fmt.Sprintf("/ok?len=%d", plain.wantLen)
	if f == faultNone || rng.IntN(2) == 0 {
		return plain
	}
	r := request{id: id, method: "GET", wantStatus: 200, wantLen: rng.IntN(200) + 1}
	path := "/fault"
	switch f {
	case faultHeadlessBody:
		switch rng.IntN(3) {
		case 0:
			r.method = "HEAD"
		case 1:
			r.wantStatus, path = 204, "/fault/204"
		default:
			r.wantStatus, path = 304, "/fault/304"
		}
	case faultStallHeadSmall:
		r.wantLen = smallBody
	case faultStallHeadBig:
		r.wantLen = largeBody
	case faultStallMidBody, faultResetMidBody:
		r.wantLen = smallBody
		if rng.IntN(2) == 0 {
			r.wantLen = largeBody
		}
	case faultSlowReader:
		r.method = "POST"
		r.bodyLen = (32 << 10) + rng.IntN(96<<10)
	}
	r.target = fmt.Sprintf("%s?len=%d", path, r.wantLen)
	return r
}
