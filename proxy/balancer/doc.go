// Package balancer chooses the endpoint of each request of an upstream service and keeps
// track of the endpoints' health: consistent hashing (ring_hash, maglev) and the key-blind
// policies (round_robin, weighted_round_robin, least_request, random), passive outlier
// detection, optional active health checks, panic mode, bounded load, max requests and slow
// start.
//
// # How the pieces fit
//
// An Upstream (New) is one service. Its discovery source calls Update with every snapshot;
// Update builds an immutable routing state off the request path (the handles of the routable
// endpoints in table order, the hash table or weighted schedule, totals) and publishes it
// through an atomic pointer. The hash table or schedule is rebuilt only when the set of
// routable endpoints or their weights change; never because of health.
//
// Each endpoint has one handle, *Endpoint, keyed by ID, that survives snapshot swaps while
// its ID and address stay: ejection, failure counts, active-check results, in-flight count and
// Data (whatever Options.OnEndpoint returned: typically the endpoint's forwarding client).
// Endpoints critical in the registry keep their handles but are left out of the table;
// warning ones take the weight the snapshot gives them.
//
// # The request path
//
// Per request: Begin loads the routing state once (one atomic load), Pick.Next returns the
// target and, on later calls, distinct fallbacks for retries; Endpoint.Start and
// Endpoint.Finish bracket each attempt. They take no lock (Finish does, only to eject) and do
// not allocate (a walk past more than eight unavailable endpoints may). The Pick lives on the
// caller's stack and must not be copied once used:
//
//	var p balancer.Pick // on the stack
//	up.Begin(&p, hashring.HashString(key), key != "")
//	for {
//		ep, err := p.Next()
//		if err != nil {
//			return err // ErrNoEndpoints, ErrNoKey, ErrOverloaded, ErrExhausted
//		}
//		ep.Start()
//		out := forward(ep) // Outcome{Status, Failure, Latency}
//		ep.Finish(out)
//		if !retryable(out) {
//			return nil
//		}
//	}
//
// The hash policies walk the table from the key's hash: the key's home endpoint first, then
// the next distinct endpoints of the ring (or maglev table) in a fixed order, so a key's
// fallbacks are stable and an endpoint's keys move to their next endpoints only while it is
// out, and come back when it returns. A walk passes over an endpoint that is ejected or
// failing active checks (unless in panic mode), at Config.MaxRequests, over its bounded-load
// cap (Config.BoundedLoad: the overflow goes to the next endpoint of the walk, not a random
// one) or, while it warms up (Config.SlowStart), for the keys whose second hash is above its
// warm fraction. Endpoints passed over for bounded load or slow start are kept as a last
// resort. Requests without a key follow Config.NoKey.
//
// Panic mode: when fewer than Config.PanicThreshold percent of the routable endpoints are
// healthy, ejection and active health are ignored and every routable endpoint takes traffic,
// rather than overloading the few that are left.
//
// # Health
//
// Passive outlier detection (Endpoint.Finish, OutlierConfig): consecutive 5xx, consecutive
// gateway failures (502, 503, 504, connect failures, timeouts, resets), and connect failures
// that go on for ConnectFailureWindow eject an endpoint for BaseEjectionTime times the number
// of its ejections, up to MaxEjectionTime, while at most MaxEjectionPercent of the endpoints
// (at least one) are ejected. With the defaults, an endpoint that starts refusing connections
// is ejected at its fifth failed attempt, or at its second if a second has passed since the
// first, whichever comes first: it stops getting first tries within ten failed requests or
// about a second of traffic. There is no goroutine or timer per ejection: a request that meets
// an endpoint whose ejection is over returns it to service (an atomic compare of the deadline
// and a compare-and-swap of the state, no lock), and so does Run's sweep once a second. Each
// ejection and return is logged and reported to Options.Events: an ejection by the request
// that made it, a return by Run, which a request signals without waiting (without Run, by the
// next Update).
//
// Active checks (Upstream.Run, ActiveConfig): an HTTP GET of a path on every endpoint,
// Interval ± 10% after the end of its previous probe (never two at once), by a bounded pool
// of goroutines, with healthy and unhealthy thresholds. Run stops and joins all of them when
// its context ends.
//
// # Operator overrides and explanations
//
// Drain, Undrain, Eject, EndEjection, SetWeight and ClearWeight are an operator's overrides
// (override.go), kept by endpoint ID so that they survive snapshot swaps, and listed by
// Overrides. A drain or an ejection flips a status bit the pick already reads, so it costs
// the request path nothing; a weight rebuilds the table as a registry change would. Explain
// runs the request path's own pick with a trace attached (the only cost to requests is a nil
// check per candidate) and says which endpoints the walk met, why it passed over each, where
// the request lands and where it would go next; KeyShares measures each endpoint's share of
// the key space with the same pick. OnChange (Options) hears of every snapshot, ejection,
// return, active-check verdict and override, for an event log.
//
// # Concurrency
//
// Update must be called from one goroutine at a time; everything else is safe for concurrent
// use, with Update too. Options.Events is called synchronously from the goroutine of Update,
// of Run, or of a request that ejects an endpoint; never from Pick.Next. Options.Now is the
// clock of ejections and slow start (tests inject it).
package balancer
