package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/waku-org/go-waku/waku/v2/protocol/pb"
)

// base holds the fields every command line may carry.
type base struct {
	ID        json.RawMessage `json:"id"`
	Cmd       string          `json:"cmd"`
	TimeoutMs *int64          `json:"timeoutMs"`
}

// ctx returns a context for one command (default timeout def).
func (b base) ctx(parent context.Context, def time.Duration) (context.Context, context.CancelFunc, error) {
	d := def
	if b.TimeoutMs != nil {
		if *b.TimeoutMs <= 0 {
			return nil, nil, fail("timeoutMs must be positive")
		}
		d = time.Duration(*b.TimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(parent, d)
	return ctx, cancel, nil
}

func toHex(b []byte) string { return hex.EncodeToString(b) }

func fromHex(s, what string) ([]byte, error) {
	s = strings.TrimPrefix(s, "0x")
	if len(s)%2 != 0 {
		return nil, fail("%s must be an even-length hex string", what)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fail("%s must be an even-length hex string", what)
	}
	return b, nil
}

// nsValue is a nanosecond timestamp given as a decimal string (or a JSON
// number). Present=false: the field was absent; Null=true: it was null.
type nsValue struct {
	Present bool
	Null    bool
	V       int64
}

func (n *nsValue) UnmarshalJSON(b []byte) error {
	n.Present = true
	s := strings.TrimSpace(string(b))
	if s == "null" {
		n.Null = true
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp must be a decimal string of nanoseconds (got %s)", string(b))
	}
	n.V = v
	return nil
}

// ptr returns nil when absent or null.
func (n nsValue) ptr() *int64 {
	if !n.Present || n.Null {
		return nil
	}
	v := n.V
	return &v
}

func parsePeerID(s string) (peer.ID, error) {
	if s == "" {
		return "", fail("peerId is required")
	}
	id, err := peer.Decode(s)
	if err != nil {
		return "", fail("bad peerId %q: %v", s, err)
	}
	return id, nil
}

// parseLoopbackP2PAddr parses a multiaddr with /p2p/ and refuses anything that
// is not an IP loopback address: this program never contacts other hosts.
func parseLoopbackP2PAddr(s string) (ma.Multiaddr, *peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, nil, fail("bad multiaddr %q: %v", s, err)
	}
	info, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, nil, fail("multiaddr %q needs a /p2p/<peer id> part: %v", s, err)
	}
	for _, addr := range info.Addrs {
		ip, err := manet.ToIP(addr)
		if err != nil || !ip.IsLoopback() {
			return nil, nil, fail("refusing to contact %q: only IP loopback addresses are allowed", s)
		}
	}
	return m, info, nil
}

// messageJSON renders a WakuMessage the way the JSON protocol reports it.
func messageJSON(m *pb.WakuMessage) map[string]any {
	out := map[string]any{
		"contentTopic": m.ContentTopic,
		"payload":      toHex(m.Payload),
		"timestamp":    nil,
		"meta":         nil,
		"version":      nil,
		"ephemeral":    m.GetEphemeral(),
	}
	if m.Timestamp != nil {
		out["timestamp"] = strconv.FormatInt(*m.Timestamp, 10)
	}
	if m.Meta != nil {
		out["meta"] = toHex(m.Meta)
	}
	if m.Version != nil {
		out["version"] = *m.Version
	}
	return out
}

// messageArgs are the fields of a WakuMessage to build (publish, lightpush).
type messageArgs struct {
	ContentTopic string  `json:"contentTopic"`
	Payload      string  `json:"payload"`
	Timestamp    nsValue `json:"timestamp"`
	Meta         *string `json:"meta"`
	Ephemeral    *bool   `json:"ephemeral"`
	Version      *uint32 `json:"version"`
}

// build makes the WakuMessage. No timestamp field = now (ns); "timestamp":
// null = no timestamp at all (go-waku then hashes 8 zero bytes).
func (m messageArgs) build(now func() int64) (*pb.WakuMessage, error) {
	payload, err := fromHex(m.Payload, "payload")
	if err != nil {
		return nil, err
	}
	msg := &pb.WakuMessage{Payload: payload, ContentTopic: m.ContentTopic, Version: m.Version}
	switch {
	case !m.Timestamp.Present:
		ts := now()
		msg.Timestamp = &ts
	case m.Timestamp.Null:
	default:
		ts := m.Timestamp.V
		msg.Timestamp = &ts
	}
	if m.Meta != nil {
		if msg.Meta, err = fromHex(*m.Meta, "meta"); err != nil {
			return nil, err
		}
	}
	if m.Ephemeral != nil && *m.Ephemeral {
		t := true
		msg.Ephemeral = &t
	}
	return msg, nil
}

func ipString(ip net.IP) any {
	if ip == nil {
		return nil
	}
	return ip.String()
}
