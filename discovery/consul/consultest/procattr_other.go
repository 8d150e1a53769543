//go:build !linux

package consultest

import "syscall"

// procAttr returns nil: only Linux can tie the agent's life to the test process's; elsewhere
// an agent of a test binary killed by a timeout must be stopped by hand.
func procAttr() *syscall.SysProcAttr {
	return nil
}
