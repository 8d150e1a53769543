package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
)

// The operator commands talk to a running sidecar's admin API (package admin):
//
//	ringside status                              the upstreams
//	ringside endpoints UPSTREAM                  its endpoints, states and key shares
//	ringside route UPSTREAM [KEY] [--header K=V] [--cookie K=V] [--path P] [--method M] [--client-ip IP]
//	ringside drain UPSTREAM ENDPOINT [-keep-keys 30s]
//	ringside undrain|return UPSTREAM ENDPOINT
//	ringside eject UPSTREAM ENDPOINT -for 5m
//	ringside weight UPSTREAM ENDPOINT N|clear
//	ringside events [-since SEQ] [-limit N]
//	ringside overrides [UPSTREAM]                the operator's overrides in force
//	ringside clear UPSTREAM ENDPOINT             clear every override of an endpoint
//
// Common flags: -admin ADDR (default $RINGSIDE_ADMIN, else 127.0.0.1:9901), -token-file FILE
// (default: $RINGSIDE_ADMIN_TOKEN), -o table|json, -timeout. Flags may come before or after
// the arguments.

// Exit codes of the operator commands, for scripts.
const (
	cliOK          = 0 // done
	cliRefused     = 1 // the API refused the request: unknown upstream or endpoint, bad value
	cliUsage       = 2 // bad command line
	cliUnreachable = 3 // the admin API could not be reached or answered something else than its JSON
	cliAuth        = 4 // no token, a wrong token, or changes disabled (no admin.token_file)
	cliNoTarget    = 5 // route: no endpoint would take the request now
)

// cliCommands are the operator commands, by name.
var cliCommands = map[string]func(c *cli, args []string) int{
	"status":    (*cli).status,
	"endpoints": (*cli).endpoints,
	"route":     (*cli).route,
	"drain":     (*cli).drain,
	"undrain":   controlCommand("undrain"),
	"return":    controlCommand("return"),
	"eject":     (*cli).eject,
	"weight":    (*cli).weight,
	"events":    (*cli).events,
	"overrides": (*cli).overrides,
	"clear":     (*cli).clear,
}

// isCLICommand reports whether name is an operator command.
func isCLICommand(name string) bool { _, ok := cliCommands[name]; return ok }

// cli is one operator command's context.
type cli struct {
	fs         *flag.FlagSet
	adminAddr  string
	tokenFile  string
	output     string
	timeout    time.Duration
	stdout     io.Writer
	stderr     io.Writer
	httpClient *http.Client
}

// runCLI runs operator command args[0].
func runCLI(args []string, stdout, stderr io.Writer) int {
	name := args[0]
	c := &cli{stdout: stdout, stderr: stderr}
	c.fs = flag.NewFlagSet("ringside "+name, flag.ContinueOnError)
	c.fs.SetOutput(stderr)
	def := os.Getenv("RINGSIDE_ADMIN")
	if def == "" {
		def = "127.0.0.1:9901"
	}
	c.fs.StringVar(&c.adminAddr, "admin", def, "address of the sidecar's admin server (env RINGSIDE_ADMIN)")
	c.fs.StringVar(&c.tokenFile, "token-file", "", "file holding the admin token (default: env RINGSIDE_ADMIN_TOKEN)")
	c.fs.StringVar(&c.output, "o", "table", "output: table or json")
	c.fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the admin API")
	return cliCommands[name](c, args[1:])
}

// parse parses flags and arguments in any order and checks the argument count.
func (c *cli) parse(args []string, minArgs, maxArgs int, usage string) ([]string, bool) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, false
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minArgs || len(pos) > maxArgs || (c.output != "table" && c.output != "json") {
		fmt.Fprintf(c.stderr, "usage: ringside %s [-admin ADDR] [-o table|json]\n", usage)
		return nil, false
	}
	base := c.adminAddr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c.adminAddr = strings.TrimSuffix(base, "/")
	c.httpClient = &http.Client{Timeout: c.timeout}
	return pos, true
}

// apiError is an answer of the API other than 2xx, with the exit code it maps to.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

// call sends a request to the API and decodes its JSON answer into out.
func (c *cli) call(method, path string, body any, auth bool, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &apiError{cliUsage, err.Error()}
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.adminAddr+path, rd)
	if err != nil {
		return &apiError{cliUsage, err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		tok, err := c.token()
		if err != nil {
			return &apiError{cliAuth, err.Error()}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return &apiError{cliUnreachable, fmt.Sprintf("admin API at %s: %v", c.adminAddr, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &apiError{cliUnreachable, fmt.Sprintf("admin API at %s: %v", c.adminAddr, err)}
	}
	if resp.StatusCode/100 != 2 {
		var e admin.APIError
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			return &apiError{cliUnreachable, fmt.Sprintf("admin API at %s: %s", c.adminAddr, resp.Status)}
		}
		msg := e.Error
		if e.Allowed != "" {
			msg += " (allowed: " + e.Allowed + ")"
		}
		code := cliRefused
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			code = cliAuth
		} else if resp.StatusCode >= 500 {
			code = cliUnreachable
		}
		return &apiError{code, msg}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &apiError{cliUnreachable, fmt.Sprintf("admin API at %s: not its JSON: %v", c.adminAddr, err)}
	}
	return nil
}

// token returns the admin token: from -token-file, else RINGSIDE_ADMIN_TOKEN.
func (c *cli) token() (string, error) {
	if c.tokenFile != "" {
		return admin.ReadToken(c.tokenFile)
	}
	if tok := strings.TrimSpace(os.Getenv("RINGSIDE_ADMIN_TOKEN")); tok != "" {
		return tok, nil
	}
	return "", errors.New("no admin token: pass -token-file FILE or set RINGSIDE_ADMIN_TOKEN")
}

// fail prints err and returns its exit code.
func (c *cli) fail(err error) int {
	fmt.Fprintf(c.stderr, "ringside: %v\n", err)
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code
	}
	return cliRefused
}

// show prints v as JSON with -o json, or with table otherwise.
func (c *cli) show(v any, table func(io.Writer)) {
	if c.output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
		return
	}
	table(c.stdout)
}

func (c *cli) status(args []string) int {
	if _, ok := c.parse(args, 0, 0, "status"); !ok {
		return cliUsage
	}
	var v admin.UpstreamsView
	if err := c.call("GET", "/v1/upstreams", nil, false, &v); err != nil {
		return c.fail(err)
	}
	c.show(v, func(w io.Writer) { printStatus(w, v) })
	return cliOK
}

func (c *cli) endpoints(args []string) int {
	pos, ok := c.parse(args, 1, 1, "endpoints UPSTREAM")
	if !ok {
		return cliUsage
	}
	var v admin.EndpointsView
	if err := c.call("GET", "/v1/upstreams/"+url.PathEscape(pos[0])+"/endpoints", nil, false, &v); err != nil {
		return c.fail(err)
	}
	c.show(v, func(w io.Writer) { printEndpoints(w, v) })
	return cliOK
}

// pairs is a repeatable K=V flag.
type pairs map[string]string

func (p pairs) String() string { return fmt.Sprint(map[string]string(p)) }
func (p pairs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want NAME=VALUE", s)
	}
	p[k] = v
	return nil
}

func (c *cli) route(args []string) int {
	headers, cookies := pairs{}, pairs{}
	c.fs.Var(headers, "header", "a request header NAME=VALUE (repeatable)")
	c.fs.Var(cookies, "cookie", "a request cookie NAME=VALUE (repeatable)")
	path := c.fs.String("path", "", "the request path, with its query")
	method := c.fs.String("method", "", "the request method (default GET)")
	clientIP := c.fs.String("client-ip", "", "the address the request comes from (default 127.0.0.1)")
	pos, ok := c.parse(args, 1, 2, "route UPSTREAM [KEY] [--header K=V] [--cookie K=V] [--path P] [--method M] [--client-ip IP]")
	if !ok {
		return cliUsage
	}
	req := admin.RouteRequest{Upstream: pos[0], Method: *method, Path: *path, Headers: headers, Cookies: cookies, ClientIP: *clientIP}
	if len(pos) == 2 {
		if len(headers)+len(cookies) > 0 || *path != "" {
			fmt.Fprintln(c.stderr, "ringside route: give a KEY or a request (--header, --cookie, --path), not both")
			return cliUsage
		}
		req = admin.RouteRequest{Upstream: pos[0], Key: &pos[1]}
	}
	var v admin.RouteView
	if err := c.call("POST", "/v1/route", req, false, &v); err != nil {
		return c.fail(err)
	}
	c.show(v, func(w io.Writer) { printRoute(w, v) })
	if v.Target == nil {
		return cliNoTarget
	}
	return cliOK
}

// change sends a control to UPSTREAM ENDPOINT and prints the endpoint after it.
func (c *cli) change(method, upstream, endpoint, action, query string, body any) int {
	path := "/v1/upstreams/" + url.PathEscape(upstream) + "/endpoints/" + url.PathEscape(endpoint) + "/" + action
	if query != "" {
		path += "?" + query
	}
	var v admin.ControlView
	if err := c.call(method, path, body, true, &v); err != nil {
		return c.fail(err)
	}
	c.show(v, func(w io.Writer) { printControl(w, v) })
	return cliOK
}

// controlCommand returns the command of a control without options.
func controlCommand(action string) func(c *cli, args []string) int {
	return func(c *cli, args []string) int {
		pos, ok := c.parse(args, 2, 2, action+" UPSTREAM ENDPOINT")
		if !ok {
			return cliUsage
		}
		return c.change("POST", pos[0], pos[1], action, "", nil)
	}
}

func (c *cli) drain(args []string) int {
	keep := c.fs.Duration("keep-keys", 0, "keep the keys whose home it is for this long (0: move them at once)")
	pos, ok := c.parse(args, 2, 2, "drain UPSTREAM ENDPOINT [-keep-keys DURATION]")
	if !ok {
		return cliUsage
	}
	q := ""
	if *keep > 0 {
		q = "keep_keys=" + keep.String()
	}
	return c.change("POST", pos[0], pos[1], "drain", q, nil)
}

func (c *cli) eject(args []string) int {
	d := c.fs.Duration("for", 0, "how long the ejection lasts (required)")
	pos, ok := c.parse(args, 2, 2, "eject UPSTREAM ENDPOINT -for DURATION")
	if !ok {
		return cliUsage
	}
	if *d <= 0 {
		fmt.Fprintln(c.stderr, "ringside eject: -for DURATION is required, e.g. -for 5m")
		return cliUsage
	}
	return c.change("POST", pos[0], pos[1], "eject", "for="+d.String(), nil)
}

func (c *cli) weight(args []string) int {
	pos, ok := c.parse(args, 3, 3, "weight UPSTREAM ENDPOINT N|clear")
	if !ok {
		return cliUsage
	}
	if pos[2] == "clear" {
		return c.change("DELETE", pos[0], pos[1], "weight", "", nil)
	}
	return c.change("POST", pos[0], pos[1], "weight", "weight="+url.QueryEscape(pos[2]), nil)
}

func (c *cli) events(args []string) int {
	since := c.fs.String("since", "", "only events after this seq or RFC 3339 time")
	limit := c.fs.Int("limit", 50, "at most this many events")
	if _, ok := c.parse(args, 0, 0, "events [-since SEQ|TIME] [-limit N]"); !ok {
		return cliUsage
	}
	q := url.Values{}
	if *since != "" {
		q.Set("since", *since)
	}
	q.Set("limit", fmt.Sprint(*limit))
	var v admin.EventsView
	if err := c.call("GET", "/v1/events?"+q.Encode(), nil, false, &v); err != nil {
		return c.fail(err)
	}
	c.show(v, func(w io.Writer) { printEvents(w, v) })
	return cliOK
}

func (c *cli) overrides(args []string) int {
	pos, ok := c.parse(args, 0, 1, "overrides [UPSTREAM]")
	if !ok {
		return cliUsage
	}
	path := "/v1/overrides"
	if len(pos) == 1 {
		path = "/v1/upstreams/" + url.PathEscape(pos[0]) + "/overrides"
	}
	var v admin.OverridesView
	if err := c.call("GET", path, nil, false, &v); err != nil {
		return c.fail(err)
	}
	c.show(v, func(w io.Writer) { printOverrides(w, v) })
	return cliOK
}

func (c *cli) clear(args []string) int {
	pos, ok := c.parse(args, 2, 2, "clear UPSTREAM ENDPOINT")
	if !ok {
		return cliUsage
	}
	var v admin.ControlView
	path := "/v1/upstreams/" + url.PathEscape(pos[0]) + "/overrides/" + url.PathEscape(pos[1])
	if err := c.call("DELETE", path, nil, true, &v); err != nil {
		return c.fail(err)
	}
	c.show(v, func(w io.Writer) { printControl(w, v) })
	return cliOK
}
