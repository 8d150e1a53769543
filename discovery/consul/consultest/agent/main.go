// Command consul is a cut-down Consul v1.15.4 binary for ringside's integration tests.
//
// It registers only the "agent" and "version" commands: the full command tree of
// github.com/hashicorp/consul/command does not compile against the api module versions the
// Go module proxy still serves (see /work/shared/NOTES.md). "consul agent -dev" runs a real
// single-node Consul (HTTP API, health checks, blocking queries, agent registrations), which
// is all the tests in discovery/consul need.
//
// This is a separate Go module so that ringside's own go.mod does not carry Consul's server
// dependency tree; build it with build.sh next to this file.
package main

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/hashicorp/consul/command/agent"
	"github.com/hashicorp/consul/command/cli"
	"github.com/hashicorp/consul/command/version"
	mcli "github.com/mitchellh/cli"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes one command, as Consul's own main does, and returns the exit code.
func run(args []string) int {
	log.SetOutput(io.Discard) // as Consul's main: libraries' stray log lines are noise
	ui := &cli.BasicUI{BasicUi: mcli.BasicUi{Reader: os.Stdin, Writer: os.Stdout, ErrorWriter: os.Stderr}}
	c := &mcli.CLI{
		Name: "consul",
		Args: args,
		Commands: map[string]mcli.CommandFactory{
			"agent":   func() (mcli.Command, error) { return agent.New(ui), nil },
			"version": func() (mcli.Command, error) { return version.New(ui), nil },
		},
		HelpWriter:  os.Stdout,
		ErrorWriter: os.Stderr,
	}
	if c.IsVersion() {
		return version.New(ui).Run(nil)
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error executing CLI: %v\n", err)
		return 1
	}
	return code
}
