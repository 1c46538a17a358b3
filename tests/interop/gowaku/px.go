package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/ethereum/go-ethereum/p2p/enr"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	wps "github.com/waku-org/go-waku/waku/v2/peerstore"
	wenr "github.com/waku-org/go-waku/waku/v2/protocol/enr"
	"github.com/waku-org/go-waku/waku/v2/protocol/metadata"
	"github.com/waku-org/go-waku/waku/v2/protocol/peer_exchange"
	pxpb "github.com/waku-org/go-waku/waku/v2/protocol/peer_exchange/pb"
)

// --------------------------------------------------------------- metadata ---

// metadataClient is a second instance of go-waku's metadata protocol object,
// used only for its client Request (WakuNode keeps its own instance private).
// It is never started (no stream handler, no connection notifications); its
// local ENR mirrors the node's sharding ("rs"/"rsv") before every request, so
// it sends exactly what the node's own metadata request on connect sends.
type metadataClient struct {
	a     *peerApp
	mu    sync.Mutex
	local *enode.LocalNode
	wm    *metadata.WakuMetadata
}

func newMetadataClient(a *peerApp) (*metadataClient, error) {
	db, err := enode.OpenDB("")
	if err != nil {
		return nil, err
	}
	local := enode.NewLocalNode(db, a.key)
	wm := metadata.NewWakuMetadata(a.opts.cluster, local, a.log)
	wm.SetHost(a.node.Host())
	return &metadataClient{a: a, local: local, wm: wm}, nil
}

func (m *metadataClient) query(ctx context.Context, id peer.ID) (map[string]any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := wenr.RelaySharding(m.a.node.ENR().Record())
	if err != nil {
		return nil, fail("reading own ENR sharding: %v", err)
	}
	if rs != nil {
		if err := wenr.Update(m.a.log, m.local, wenr.WithWakuRelaySharding(*rs)); err != nil {
			return nil, fail("mirroring own ENR sharding: %v", err)
		}
	}
	sentCluster, sentShards, _ := m.wm.ClusterAndShards()
	resp, err := m.wm.Request(ctx, id)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"clusterId": nil, "shards": []uint32{}, "sent": map[string]any{"clusterId": sentCluster, "shards": nonNil(sentShards)}}
	if resp.ClusterId != nil {
		out["clusterId"] = *resp.ClusterId
	}
	if resp.Shards != nil {
		out["shards"] = resp.Shards
	}
	return out, nil
}

func nonNil(s []uint32) []uint32 {
	if s == nil {
		return []uint32{}
	}
	return s
}

// ----------------------------------------------------------- peer exchange ---

func originName(o wps.Origin) string {
	switch o {
	case wps.Discv5:
		return "discv5"
	case wps.Static:
		return "static"
	case wps.PeerExchange:
		return "peerExchange"
	case wps.DNSDiscovery:
		return "dnsDiscovery"
	case wps.Rendezvous:
		return "rendezvous"
	case wps.PeerManager:
		return "peerManager"
	default:
		return "unknown"
	}
}

// checkMultiaddrsField looks at an ENR's "multiaddrs" entry for the two cases
// in which go-waku's wenr.Multiaddress does not return: an unparseable
// multiaddr (it `continue`s without advancing: an endless loop) and a single
// trailing byte (index out of range: a panic). Anything else is left to
// go-waku's own code.
func checkMultiaddrsField(rec *enr.Record) error {
	var raw []byte
	if err := rec.Load(enr.WithEntry(wenr.MultiaddrENRField, &raw)); err != nil {
		if enr.IsNotFound(err) {
			return nil
		}
		return nil // go-waku returns this error itself
	}
	if len(raw) < 2 {
		return nil // go-waku ignores it
	}
	offset := 0
	for offset < len(raw) {
		if len(raw)-offset < 2 {
			return fmt.Errorf("ENR multiaddrs entry ends with a single byte: go-waku's wenr.Multiaddress would panic (index out of range)")
		}
		size := int(binary.BigEndian.Uint16(raw[offset : offset+2]))
		if len(raw) < offset+2+size {
			return nil // go-waku reports "invalid multiaddress field length"
		}
		if _, err := ma.NewMultiaddrBytes(raw[offset+2 : offset+2+size]); err != nil {
			return fmt.Errorf("ENR multiaddrs entry holds an unparseable multiaddr (%v): go-waku's wenr.Multiaddress would loop forever on it", err)
		}
		offset += 2 + size
	}
	return nil
}

type pxRecord struct {
	json    map[string]any
	node    *enode.Node
	info    *peer.AddrInfo
	fatal   error // go-waku's client would reject the whole response
	nonLoop bool  // has an address that is not loopback: never handed to go-waku
}

// decodePXRecord does what go-waku's peer-exchange client (handleResponse)
// does with one record: RLP-decode, enode.New (signature check),
// wenr.EnodeToPeerInfo; plus the ENR fields a test wants to see.
func decodePXRecord(raw []byte) pxRecord {
	r := pxRecord{json: map[string]any{"raw": toHex(raw), "enr": nil, "peerId": nil, "multiaddrs": []string{}, "cluster": nil, "shards": nil}}
	rec := &enr.Record{}
	if err := rec.DecodeRLP(rlp.NewStream(bytes.NewBuffer(raw), uint64(len(raw)))); err != nil {
		r.fatal = fmt.Errorf("converting bytes to enr: %w", err)
		r.json["error"] = r.fatal.Error()
		return r
	}
	r.json["seq"] = rec.Seq()
	if rs, err := wenr.RelaySharding(rec); err != nil {
		r.json["shardingError"] = err.Error()
	} else if rs != nil {
		r.json["cluster"] = rs.ClusterID
		shards := append([]uint16{}, rs.ShardIDs...)
		sort.Slice(shards, func(i, j int) bool { return shards[i] < shards[j] })
		r.json["shards"] = shards
	}
	node, err := enode.New(enode.ValidSchemes, rec)
	if err != nil {
		r.fatal = fmt.Errorf("creating enode record: %w", err)
		r.json["error"] = r.fatal.Error()
		return r
	}
	r.node = node
	r.json["enr"] = node.String()
	r.json["ip"] = ipString(node.IP())
	r.json["tcp"] = node.TCP()
	r.json["udp"] = node.UDP()
	if flags, err := wenr.GetWakuEnrBitField(node); err == nil {
		r.json["waku2"] = flags
	}
	if err := checkMultiaddrsField(rec); err != nil {
		r.fatal = err
		r.json["error"] = err.Error()
		return r
	}
	info, err := wenr.EnodeToPeerInfo(node)
	if err != nil {
		r.fatal = err
		r.json["error"] = err.Error()
		return r
	}
	r.info = info
	r.json["peerId"] = info.ID.String()
	if _, addrs, err := wenr.Multiaddress(node); err == nil {
		ss := []string{}
		for _, m := range addrs {
			ss = append(ss, m.String())
			if ip, err := manet.ToIP(m); err != nil || !ip.IsLoopback() {
				r.nonLoop = true
			}
		}
		r.json["multiaddrs"] = ss
	}
	return r
}

func cmdPeerExchange(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		PeerID   string  `json:"peerId"`
		NumPeers *uint64 `json:"numPeers"`
		Dial     *bool   `json:"dial"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	id, err := parsePeerID(c.PeerID)
	if err != nil {
		return nil, err
	}
	numPeers := uint64(60)
	if c.NumPeers != nil {
		numPeers = *c.NumPeers
	}
	ctx, cancel, err := c.ctx(a.ctx, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()

	// The request go-waku's client (WakuPeerExchange.Request) writes, with
	// go-waku's own protobuf types and framing: PeerExchangeRPC{query{num_peers}}.
	h := a.node.Host()
	stream, err := h.NewStream(ctx, id, peer_exchange.PeerExchangeID_v20alpha1)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = stream.SetDeadline(deadline)
	}
	req := &pxpb.PeerExchangeRPC{Query: &pxpb.PeerExchangeQuery{NumPeers: numPeers}}
	if err := pbio.NewDelimitedWriter(stream).WriteMsg(req); err != nil {
		_ = stream.Reset()
		return nil, err
	}
	resp := &pxpb.PeerExchangeRPC{}
	if err := pbio.NewDelimitedReader(stream, math.MaxInt32).ReadMsg(resp); err != nil {
		_ = stream.Reset()
		return nil, err
	}
	_ = stream.Close()

	out := map[string]any{"peers": []map[string]any{}, "goWakuAccepts": true}
	if resp.Response == nil {
		out["goWakuAccepts"] = false
		out["goWakuError"] = "the response has no `response` field: go-waku's client would dereference it (nil pointer panic)"
		return out, nil
	}
	var records []pxRecord
	var fatal error
	for _, pi := range resp.Response.PeerInfos {
		r := decodePXRecord(pi.Enr)
		if r.fatal != nil && fatal == nil {
			fatal = r.fatal
		}
		records = append(records, r)
	}
	if fatal != nil {
		// go-waku's handleResponse returns on the first bad record: nothing
		// from this response reaches its peer store.
		out["goWakuAccepts"] = false
		out["goWakuError"] = fatal.Error()
	}

	// Hand accepted records to go-waku's peer manager the way its client's
	// peer connector does (origin PeerExchange; dial at once while fewer than
	// OutPeersTarget peers are connected), unless an address is not loopback.
	dial := c.Dial == nil || *c.Dial
	ps := h.Peerstore().(wps.WakuPeerstore)
	peers := []map[string]any{}
	for _, r := range records {
		j := r.json
		j["handedToGoWaku"] = false
		j["inPeerstore"] = false
		if r.info != nil {
			_, errBefore := ps.Origin(r.info.ID)
			j["inPeerstoreBefore"] = errBefore == nil
		}
		if fatal == nil && r.info != nil {
			if r.nonLoop {
				j["notHandedReason"] = "non-loopback address (this test peer never contacts other hosts)"
			} else {
				connectNow := dial && len(h.Network().Peers()) < a.node.PeerManager().OutPeersTarget
				a.node.AddDiscoveredPeer(r.info.ID, r.info.Addrs, wps.PeerExchange, nil, r.node, connectNow)
				j["handedToGoWaku"] = true
				j["dialing"] = connectNow
			}
		}
		if r.info != nil {
			if o, err := ps.Origin(r.info.ID); err == nil {
				j["inPeerstore"] = true
				j["origin"] = originName(o)
			}
		}
		peers = append(peers, j)
	}
	out["peers"] = peers
	return out, nil
}
