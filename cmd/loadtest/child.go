package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the load test started (the sandbox or the engine).
// Its stdout is kept whole (banners and the stop message are what we read);
// of stderr only the last lines and a count are kept, since the engine
// logs there.
type child struct {
	name string
	cmd  *exec.Cmd

	mu        sync.Mutex
	out       []string
	errTail   []string
	errLines  int
	exited    chan struct{}
	waitErr   error
	readers   sync.WaitGroup
	stopOnce  sync.Once
	stopError error
}

const errTailLines = 20

func startChild(name, path string, args ...string) (*child, error) {
	c := &child{name: name, cmd: exec.Command(path, args...), exited: make(chan struct{})}
	setDeathSignal(c.cmd)
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	// Both pipes are drained for the whole run: a child blocked on a full
	// pipe would stall and spoil the measurement.
	c.readers.Add(2)
	go c.read(stdout, func(line string) { c.out = append(c.out, line) })
	go c.read(stderr, func(line string) {
		c.errLines++
		c.errTail = append(c.errTail, line)
		if len(c.errTail) > errTailLines {
			c.errTail = c.errTail[1:]
		}
	})
	go func() {
		c.readers.Wait()
		err := c.cmd.Wait()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) read(r io.Reader, keep func(string)) {
	defer c.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		c.mu.Lock()
		keep(sc.Text())
		c.mu.Unlock()
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// waitLine returns the first stdout line that holds substr, waiting up to
// timeout for it.
func (c *child) waitLine(ctx context.Context, substr string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		for _, l := range c.out {
			if strings.Contains(l, substr) {
				c.mu.Unlock()
				return l, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-c.exited:
			return "", fmt.Errorf("%s exited before printing %q: %v%s", c.name, substr, c.waitErr, c.stderrTail())
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not print %q within %s%s", c.name, substr, timeout, c.stderrTail())
		}
	}
}

// running reports an error when the child has exited.
func (c *child) running() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited: %v%s", c.name, c.waitErr, c.stderrTail())
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for the child to exit, killing it after
// timeout. Calling it again returns the first result.
func (c *child) stop(timeout time.Duration) error {
	c.stopOnce.Do(func() {
		select {
		case <-c.exited:
		default:
			if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
				c.stopError = err
			}
			select {
			case <-c.exited:
			case <-time.After(timeout):
				_ = c.cmd.Process.Kill()
				<-c.exited
				c.stopError = fmt.Errorf("%s did not stop within %s after SIGTERM; killed", c.name, timeout)
				return
			}
		}
		if c.waitErr != nil {
			c.stopError = fmt.Errorf("%s: %v%s", c.name, c.waitErr, c.stderrTail())
		}
	})
	return c.stopError
}

// stdout returns what the child printed so far.
func (c *child) stdout() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.out...)
}

// stderrCount is how many lines the child wrote to stderr.
func (c *child) stderrCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errLines
}

// stderrTail formats the last stderr lines for an error message.
func (c *child) stderrTail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errTail) == 0 {
		return ""
	}
	return "; its last output:\n  " + strings.Join(c.errTail, "\n  ")
}

// lastStderr returns the last stderr lines.
func (c *child) lastStderr() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errTail...)
}
