//go:build unix

package h1client

import (
	"crypto/tls"
	"errors"
	"syscall"
)

// open peeks at an idle connection's socket without blocking: a server
// that closed it has sent FIN (a read of 0) or RST, and one that sent
// bytes nobody asked for (a 408 before closing) has spoiled it.
func (c *conn) open() bool {
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var open bool
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(err, syscall.EAGAIN) // nothing to read yet: still open
		return true                           // never wait for the socket to become readable
	})
	return err == nil && open
}
