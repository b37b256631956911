package main

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePorts(t *testing.T) {
	tests := []struct {
		name         string
		n            int
		ephemeralLow int
		below        int // every port < below (0: any)
	}{
		{name: "below the ephemeral range", n: 3, ephemeralLow: 32768, below: 32768},
		{name: "range too small: kernel's choice", n: 2, ephemeralLow: lowest + 10},
		{name: "range unknown", n: 1, ephemeralLow: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ports, err := freePorts(tt.n, tt.ephemeralLow)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int]bool{}
			for _, p := range ports {
				if seen[p] || p <= 0 || (tt.below > 0 && (p < lowest || p >= tt.below)) {
					t.Fatalf("ports %v: want %d distinct ports in [%d, %d)", ports, tt.n, lowest, tt.below)
				}
				seen[p] = true
				// Free again once freePorts returns.
				l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
				if err != nil {
					t.Fatalf("port %d not free after freePorts: %v", p, err)
				}
				l.Close()
			}
			if len(ports) != tt.n {
				t.Fatalf("got %d ports, want %d", len(ports), tt.n)
			}
		})
	}
}
