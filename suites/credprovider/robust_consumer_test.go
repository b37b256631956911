package credprovider

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gauntlet-conformance/gauntlet/fakes/credprovider/probe"
)

// A consumer that stalls, speaks garbage or dies is one setup error naming
// what happened, within the caller's deadline: never a hang.
func TestConsumerSetupFailures(t *testing.T) {
	t.Parallel()
	exe, err := probe.Executable()
	if err != nil {
		t.Fatal(err)
	}
	serve := func(answer func(line string) string) func(ctx context.Context) (io.ReadWriteCloser, error) {
		return func(ctx context.Context) (io.ReadWriteCloser, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				sc := bufio.NewScanner(server)
				for sc.Scan() {
					if a := answer(sc.Text()); a != "" {
						if _, err := io.WriteString(server, a+"\n"); err != nil {
							return
						}
					}
				}
			}()
			return client, nil
		}
	}
	for _, c := range []struct {
		name string
		dial func(ctx context.Context) (io.ReadWriteCloser, error)
		want string
	}{
		{"stalls", serve(func(string) string { return "" }), "did not answer configure"},
		{"garbage", serve(func(string) string { return "Hello, I am a consumer" }), "not protocol JSON"},
		{"rejects", serve(func(string) string { return `{"id":1,"error":"no such file"}` }), "rejected the config: no such file"},
		{"dies", CommandDial([]string{"/bin/sh", "-c", "read line; echo 'panic: out of cheese' >&2; exit 3"}, nil), "out of cheese"},
		{"not-a-command", CommandDial([]string{"/nonexistent/consumer"}, nil), "start consumer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			e := &Env{}
			start := time.Now()
			err := setupConsumer(ctx, ConsumerSettings{Name: c.name, Dial: c.dial, Probe: exe, WorkDir: t.TempDir()}, e)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("setup error %v, want one containing %q", err, c.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("setup took %s", d)
			}
			if e.Consumer != nil {
				t.Errorf("a failed setup left its env behind")
			}
		})
	}
}
