// Command freeport prints N distinct TCP ports that are free on 127.0.0.1,
// one per line. etcd and kube-apiserver cannot report a port the kernel
// picked (port 0), so hack/k8s/apiserver asks for ports here first.
//
// The ports come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range): on a busy machine an ephemeral port that
// is free now is soon the local end of some other program's connection, and
// the daemon's bind fails. All N listeners stay open until every port is
// chosen, so the ports differ; up retries a bind that loses a race anyway.
package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the bottom of the range searched: above the well-known and
// most registered service ports.
const lowest = 10000

func main() {
	n := 1
	if len(os.Args) > 2 {
		usage()
	}
	if len(os.Args) == 2 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 1 || v > 64 {
			usage()
		}
		n = v
	}
	ports, err := freePorts(n, ephemeralLow())
	if err != nil {
		fmt.Fprintf(os.Stderr, "freeport: error: %v\n", err)
		os.Exit(1)
	}
	for _, p := range ports {
		fmt.Println(p)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "freeport: error: want one argument, the number of ports (1-64): run freeport 3")
	os.Exit(2)
}

// ephemeralLow is the first port of the kernel's ephemeral range (0 if
// unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}

// freePorts picks n random free ports in [lowest, ephemeralLow), or lets
// the kernel pick when that range is too small to search.
func freePorts(n, ephemeralLow int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	span := ephemeralLow - lowest
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if span >= 1000 && tries < 1000 {
			addr = "127.0.0.1:" + strconv.Itoa(lowest+rand.IntN(span))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				return nil, err
			}
			continue // taken: try another
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
