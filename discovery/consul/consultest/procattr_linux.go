package consultest

import "syscall"

// procAttr makes the kernel kill the agent when the test process dies, so an agent does not
// outlive a test binary killed by a timeout (t.Cleanup does not run then).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
