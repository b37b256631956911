package spdyconn

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestDialSilentServerHonoursDeadline: a server that accepts and never
// answers must not hang the client past its context.
func TestDialSilentServerHonoursDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, "http://"+ln.Addr().String()+"/exec/tok", []string{"v4.channel.k8s.io"}, Options{})
	if err == nil {
		t.Fatal("dial to a silent server succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dial took %s, want about the 500ms deadline", d)
	}
}
