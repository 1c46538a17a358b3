package main

import (
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	wps "github.com/waku-org/go-waku/waku/v2/peerstore"
	wprotocol "github.com/waku-org/go-waku/waku/v2/protocol"
	"github.com/waku-org/go-waku/waku/v2/protocol/filter"
	"github.com/waku-org/go-waku/waku/v2/protocol/legacy_store"
	"github.com/waku-org/go-waku/waku/v2/protocol/lightpush"
	"github.com/waku-org/go-waku/waku/v2/protocol/pb"
	"github.com/waku-org/go-waku/waku/v2/protocol/relay"
	"github.com/waku-org/go-waku/waku/v2/protocol/store"
	storepb "github.com/waku-org/go-waku/waku/v2/protocol/store/pb"
	"github.com/waku-org/go-waku/waku/v2/protocol/subscription"
)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"dial":              cmdDial,
		"peers":             cmdPeers,
		"peerProtocols":     cmdPeerProtocols,
		"hangUp":            cmdHangUp,
		"subscribe":         cmdSubscribe,
		"unsubscribe":       cmdUnsubscribe,
		"meshPeers":         cmdMeshPeers,
		"subscribers":       cmdSubscribers,
		"publish":           cmdPublish,
		"storeQuery":        cmdStoreQuery,
		"legacyStoreQuery":  cmdLegacyStoreQuery,
		"lightpush":         cmdLightpush,
		"filterSubscribe":   cmdFilterSubscribe,
		"filterUnsubscribe": cmdFilterUnsubscribe,
		"filterPing":        cmdFilterPing,
		"metadataQuery":     cmdMetadataQuery,
		"peerExchange":      cmdPeerExchange,
		"enr":               cmdENR,
	}
}

func (a *peerApp) relayOrFail() (*relay.WakuRelay, error) {
	if a.opts.noRelay || a.node.Relay() == nil {
		return nil, fail("relay is disabled (--no-relay)")
	}
	return a.node.Relay(), nil
}

func (a *peerApp) peerInfo(id peer.ID) map[string]any {
	ps := a.node.Host().Peerstore()
	protos := []string{}
	if ids, err := ps.GetProtocols(id); err == nil {
		for _, p := range ids {
			protos = append(protos, string(p))
		}
	}
	sort.Strings(protos)
	addrs := []string{}
	for _, m := range ps.Addrs(id) {
		addrs = append(addrs, m.String())
	}
	sort.Strings(addrs)
	var agent any
	if v, err := ps.Get(id, "AgentVersion"); err == nil {
		agent = v
	}
	conns := []map[string]any{}
	for _, c := range a.node.Host().Network().ConnsToPeer(id) {
		conns = append(conns, map[string]any{
			"remoteAddr": c.RemoteMultiaddr().String(),
			"direction":  c.Stat().Direction.String(),
		})
	}
	return map[string]any{"peerId": id.String(), "protocols": protos, "addrs": addrs, "agentVersion": agent, "conns": conns}
}

// ------------------------------------------------------------ connections ---

func cmdDial(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		Addr string `json:"addr"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	m, info, err := parseLoopbackP2PAddr(c.Addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel, err := c.ctx(a.ctx, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	if err := a.node.DialPeerWithMultiAddress(ctx, m); err != nil {
		return nil, err
	}
	// Wait for identify, so that the peer's protocols are known.
	h := a.node.Host()
	for {
		if h.Network().Connectedness(info.ID) != network.Connected {
			return nil, fail("connected to %s, but the connection closed before identify completed", info.ID)
		}
		if ps, err := h.Peerstore().GetProtocols(info.ID); err == nil && len(ps) > 0 {
			return a.peerInfo(info.ID), nil
		}
		select {
		case <-ctx.Done():
			return nil, fail("connected to %s, but identify did not complete in time", info.ID)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func cmdPeers(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c base
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	peers := []map[string]any{}
	for _, id := range a.node.Host().Network().Peers() {
		peers = append(peers, a.peerInfo(id))
	}
	return map[string]any{"peers": peers}, nil
}

func cmdPeerProtocols(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		PeerID string `json:"peerId"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	id, err := parsePeerID(c.PeerID)
	if err != nil {
		return nil, err
	}
	info := a.peerInfo(id)
	origin, _ := a.node.Host().Peerstore().(wps.WakuPeerstore).Origin(id)
	info["origin"] = originName(origin)
	info["connected"] = a.node.Host().Network().Connectedness(id) == network.Connected
	return info, nil
}

func cmdHangUp(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		PeerID string `json:"peerId"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	id, err := parsePeerID(c.PeerID)
	if err != nil {
		return nil, err
	}
	return nil, a.node.ClosePeerById(id)
}

// ------------------------------------------------------------------ relay ---

func (a *peerApp) relaySubscribe(topic string) (bool, error) {
	r, err := a.relayOrFail()
	if err != nil {
		return false, err
	}
	a.relaySubsMu.Lock()
	defer a.relaySubsMu.Unlock()
	if a.relaySubs[topic] {
		return true, nil
	}
	subs, err := r.Subscribe(a.ctx, wprotocol.NewContentFilter(topic))
	if err != nil {
		return false, err
	}
	a.relaySubs[topic] = true
	for _, s := range subs {
		go a.relayReadLoop(s)
	}
	return false, nil
}

// relayReadLoop reports every message of one relay subscription. The channel
// must be drained: go-waku's broadcaster blocks on full subscribers.
func (a *peerApp) relayReadLoop(s *relay.Subscription) {
	for env := range s.Ch {
		hash := env.Hash()
		hx := toHex(hash[:])
		a.ownMu.Lock()
		_, own := a.own[hx]
		if own {
			delete(a.own, hx)
		}
		a.ownMu.Unlock()
		if own {
			continue
		}
		ev := messageJSON(env.Message())
		ev["event"] = "message"
		ev["topic"] = env.PubsubTopic()
		ev["hash"] = hx
		a.out.event(ev)
	}
}

// cleanOwnLoop forgets own-publication hashes that were never delivered back.
func (a *peerApp) cleanOwnLoop() {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case now := <-t.C:
			a.ownMu.Lock()
			for h, at := range a.own {
				if now.Sub(at) > 2*time.Minute {
					delete(a.own, h)
				}
			}
			a.ownMu.Unlock()
		}
	}
}

func cmdSubscribe(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		Topic string `json:"topic"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	if c.Topic == "" {
		return nil, fail("topic is required")
	}
	already, err := a.relaySubscribe(c.Topic)
	if err != nil {
		return nil, err
	}
	return map[string]any{"alreadySubscribed": already}, nil
}

func cmdUnsubscribe(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		Topic string `json:"topic"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	r, err := a.relayOrFail()
	if err != nil {
		return nil, err
	}
	a.relaySubsMu.Lock()
	defer a.relaySubsMu.Unlock()
	if err := r.Unsubscribe(a.ctx, wprotocol.NewContentFilter(c.Topic)); err != nil {
		return nil, err
	}
	delete(a.relaySubs, c.Topic)
	return nil, nil
}

func peerIDStrings(ids []peer.ID) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, id.String())
	}
	sort.Strings(out)
	return out
}

func cmdMeshPeers(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		Topic string `json:"topic"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	r, err := a.relayOrFail()
	if err != nil {
		return nil, err
	}
	return map[string]any{"peers": peerIDStrings(r.PubSub().MeshPeers(c.Topic))}, nil
}

func cmdSubscribers(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		Topic string `json:"topic"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	r, err := a.relayOrFail()
	if err != nil {
		return nil, err
	}
	return map[string]any{"peers": peerIDStrings(r.PubSub().ListPeers(c.Topic))}, nil
}

func cmdPublish(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		messageArgs
		Topic string `json:"topic"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	r, err := a.relayOrFail()
	if err != nil {
		return nil, err
	}
	if c.Topic == "" {
		return nil, fail("topic is required")
	}
	msg, err := c.build(func() int64 { return a.node.Timesource().Now().UnixNano() })
	if err != nil {
		return nil, err
	}
	// Remember the hash first: gossipsub delivers our own publication to our
	// own subscription, possibly before Publish returns.
	expected := msg.Hash(c.Topic)
	hx := toHex(expected[:])
	a.ownMu.Lock()
	a.own[hx] = time.Now()
	a.ownMu.Unlock()
	ctx, cancel, err := c.ctx(a.ctx, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	hash, err := r.Publish(ctx, msg, relay.WithPubSubTopic(c.Topic))
	if err != nil {
		a.ownMu.Lock()
		delete(a.own, hx)
		a.ownMu.Unlock()
		return nil, err
	}
	bytes, _ := proto.Marshal(msg)
	size := len(bytes)
	return map[string]any{"hash": toHex(hash[:]), "size": size}, nil
}

// ------------------------------------------------------------------ store ---

func storeMessageJSON(kv *storepb.WakuMessageKeyValue) map[string]any {
	out := map[string]any{"hash": toHex(kv.MessageHash), "pubsubTopic": nil}
	if kv.PubsubTopic != nil {
		out["pubsubTopic"] = *kv.PubsubTopic
	}
	if kv.Message != nil {
		for k, v := range messageJSON(kv.Message) {
			out[k] = v
		}
		if kv.PubsubTopic != nil {
			h := kv.Message.Hash(*kv.PubsubTopic)
			out["computedHash"] = toHex(h[:])
		}
	}
	return out
}

type storeArgs struct {
	base
	PeerID        string   `json:"peerId"`
	Addr          string   `json:"addr"`
	PubsubTopic   *string  `json:"pubsubTopic"`
	ContentTopics []string `json:"contentTopics"`
	TimeStart     nsValue  `json:"timeStart"`
	TimeEnd       nsValue  `json:"timeEnd"`
	PageSize      *uint64  `json:"pageSize"`
	Forward       *bool    `json:"forward"`
	Hashes        []string `json:"hashes"`
	IncludeData   *bool    `json:"includeData"`
	MaxPages      *int     `json:"maxPages"`
}

func (c storeArgs) forward() bool { return c.Forward == nil || *c.Forward }

func (c storeArgs) pageSize() uint64 {
	if c.PageSize == nil {
		return 0 // go-waku's default (20)
	}
	return *c.PageSize
}

func (c storeArgs) maxPages() int {
	if c.MaxPages == nil || *c.MaxPages <= 0 {
		return 1000
	}
	return *c.MaxPages
}

// cmdStoreQuery: go-waku's store v3 CLIENT (/vac/waku/store-query/3.0.0),
// store.WakuStore.Request + Result.Next until there is no cursor.
func cmdStoreQuery(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c storeArgs
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	opts := []store.RequestOption{store.WithPaging(c.forward(), c.pageSize())}
	if c.IncludeData != nil {
		opts = append(opts, store.IncludeData(*c.IncludeData))
	}
	switch {
	case c.PeerID != "" && c.Addr != "":
		return nil, fail("give peerId or addr, not both")
	case c.PeerID != "":
		id, err := parsePeerID(c.PeerID)
		if err != nil {
			return nil, err
		}
		opts = append(opts, store.WithPeer(id))
	case c.Addr != "":
		m, _, err := parseLoopbackP2PAddr(c.Addr)
		if err != nil {
			return nil, err
		}
		opts = append(opts, store.WithPeerAddr(m))
	}
	var criteria store.Criteria
	if len(c.Hashes) > 0 {
		if c.PubsubTopic != nil || len(c.ContentTopics) > 0 || c.TimeStart.Present || c.TimeEnd.Present {
			// go-waku's StoreQueryRequest.Validate refuses this combination.
			return nil, fail("cannot use MessageHashes with ContentTopics/PubsubTopic (go-waku store client)")
		}
		var hashes []pb.MessageHash
		for _, h := range c.Hashes {
			b, err := fromHex(h, "hash")
			if err != nil {
				return nil, err
			}
			if len(b) != 32 {
				return nil, fail("invalid message hash %q: must be 32 bytes", h)
			}
			hashes = append(hashes, pb.ToMessageHash(b))
		}
		criteria = store.MessageHashCriteria{MessageHashes: hashes}
	} else {
		pubsubTopic := ""
		if c.PubsubTopic != nil {
			pubsubTopic = *c.PubsubTopic
		}
		criteria = store.FilterCriteria{
			ContentFilter: wprotocol.NewContentFilter(pubsubTopic, c.ContentTopics...),
			TimeStart:     c.TimeStart.ptr(),
			TimeEnd:       c.TimeEnd.ptr(),
		}
	}
	ctx, cancel, err := c.ctx(a.ctx, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	messages := []map[string]any{}
	pages := []int{}
	res, err := a.node.Store().Request(ctx, criteria, opts...)
	if err != nil {
		return nil, err
	}
	peerID := res.PeerID().String()
	for {
		pages = append(pages, len(res.Messages()))
		for _, kv := range res.Messages() {
			messages = append(messages, storeMessageJSON(kv))
		}
		if res.Cursor() == nil {
			break
		}
		if len(pages) >= c.maxPages() {
			return nil, &cmdError{msg: "too many pages (maxPages)", extra: map[string]any{"messages": messages, "pages": pages}}
		}
		if err := res.Next(ctx); err != nil {
			return nil, &cmdError{msg: err.Error(), extra: map[string]any{"messages": messages, "pages": pages}}
		}
	}
	return map[string]any{"messages": messages, "pages": pages, "peerId": peerID}, nil
}

// cmdLegacyStoreQuery: go-waku's legacy store v2 CLIENT
// (/vac/waku/store/2.0.0-beta4) — the protocol go-waku's --store SERVES.
func cmdLegacyStoreQuery(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c storeArgs
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	if len(c.Hashes) > 0 || c.IncludeData != nil {
		return nil, fail("legacy store v2 has no hashes/includeData")
	}
	opts := []legacy_store.HistoryRequestOption{legacy_store.WithPaging(c.forward(), c.pageSize())}
	switch {
	case c.PeerID != "" && c.Addr != "":
		return nil, fail("give peerId or addr, not both")
	case c.PeerID != "":
		id, err := parsePeerID(c.PeerID)
		if err != nil {
			return nil, err
		}
		opts = append(opts, legacy_store.WithPeer(id))
	case c.Addr != "":
		m, _, err := parseLoopbackP2PAddr(c.Addr)
		if err != nil {
			return nil, err
		}
		opts = append(opts, legacy_store.WithPeerAddr(m))
	}
	q := legacy_store.Query{ContentTopics: c.ContentTopics, StartTime: c.TimeStart.ptr(), EndTime: c.TimeEnd.ptr()}
	if c.PubsubTopic != nil {
		q.PubsubTopic = *c.PubsubTopic
	}
	ctx, cancel, err := c.ctx(a.ctx, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	ls := a.node.LegacyStore()
	res, err := ls.Query(ctx, q, opts...)
	if err != nil {
		return nil, err
	}
	messages := []map[string]any{}
	pages := []int{}
	for {
		pages = append(pages, len(res.Messages))
		for _, m := range res.Messages {
			j := messageJSON(m)
			j["pubsubTopic"] = nil
			j["hash"] = nil
			if q.PubsubTopic != "" {
				// Legacy responses carry no pubsub topic or hash: this is go-waku's
				// hash of the returned message on the queried topic.
				h := m.Hash(q.PubsubTopic)
				j["pubsubTopic"] = q.PubsubTopic
				j["hash"] = toHex(h[:])
			}
			messages = append(messages, j)
		}
		if res.IsComplete() {
			break
		}
		if len(pages) >= c.maxPages() {
			return nil, &cmdError{msg: "too many pages (maxPages)", extra: map[string]any{"messages": messages, "pages": pages}}
		}
		next, err := ls.Next(ctx, res)
		if err != nil {
			return nil, &cmdError{msg: err.Error(), extra: map[string]any{"messages": messages, "pages": pages}}
		}
		res = next
	}
	return map[string]any{"messages": messages, "pages": pages, "peerId": res.PeerID().String()}, nil
}

// -------------------------------------------------------------- lightpush ---

func cmdLightpush(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		messageArgs
		PeerID      string  `json:"peerId"`
		PubsubTopic *string `json:"pubsubTopic"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	id, err := parsePeerID(c.PeerID)
	if err != nil {
		return nil, err
	}
	msg, err := c.build(func() int64 { return a.node.Timesource().Now().UnixNano() })
	if err != nil {
		return nil, err
	}
	opts := []lightpush.RequestOption{lightpush.WithPeer(id)}
	pubsubTopic := ""
	if c.PubsubTopic != nil {
		pubsubTopic = *c.PubsubTopic
		opts = append(opts, lightpush.WithPubSubTopic(pubsubTopic))
	} else if t, err := wprotocol.GetPubSubTopicFromContentTopic(msg.ContentTopic); err == nil {
		pubsubTopic = t // what go-waku's autosharding will pick
	}
	ctx, cancel, err := c.ctx(a.ctx, 15*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	hash, err := a.node.Lightpush().Publish(ctx, msg, opts...)
	if err != nil {
		return nil, err
	}
	ts := any(nil)
	if msg.Timestamp != nil {
		ts = strconv.FormatInt(*msg.Timestamp, 10)
	}
	return map[string]any{"hash": toHex(hash[:]), "pubsubTopic": pubsubTopic, "timestamp": ts}, nil
}

// ----------------------------------------------------------------- filter ---

type filterSub struct {
	details *subscription.SubscriptionDetails
}

func (a *peerApp) filterReadLoop(s *subscription.SubscriptionDetails) {
	defer func() {
		a.filterMu.Lock()
		delete(a.filterSubs, s.ID)
		a.filterMu.Unlock()
	}()
	closing := s.Closing
	for {
		select {
		case env, ok := <-s.C:
			if !ok {
				return
			}
			hash := env.Hash()
			ev := messageJSON(env.Message())
			ev["event"] = "filter"
			ev["pubsubTopic"] = env.PubsubTopic()
			ev["hash"] = toHex(hash[:])
			ev["peerId"] = s.PeerID.String()
			a.out.event(ev)
		case _, ok := <-closing:
			if !ok { // closed by CloseC (unsubscribe / stop): not a loss
				closing = nil
				continue
			}
			// go-waku's filter ping to this service peer failed twice
			// (SetClosing): the subscription stops delivering. Reading
			// Closing is required, SetClosing blocks until someone does.
			a.out.event(map[string]any{
				"event":         "filter:lost",
				"peerId":        s.PeerID.String(),
				"pubsubTopic":   s.ContentFilter.PubsubTopic,
				"contentTopics": s.ContentFilter.ContentTopicsList(),
			})
		case <-a.ctx.Done():
			return
		}
	}
}

type filterArgs struct {
	base
	PeerID        string   `json:"peerId"`
	PubsubTopic   *string  `json:"pubsubTopic"`
	ContentTopics []string `json:"contentTopics"`
}

func (c filterArgs) contentFilter() wprotocol.ContentFilter {
	pubsubTopic := ""
	if c.PubsubTopic != nil {
		pubsubTopic = *c.PubsubTopic
	}
	return wprotocol.NewContentFilter(pubsubTopic, c.ContentTopics...)
}

func cmdFilterSubscribe(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c filterArgs
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	id, err := parsePeerID(c.PeerID)
	if err != nil {
		return nil, err
	}
	ctx, cancel, err := c.ctx(a.ctx, 15*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	subs, err := a.node.FilterLightnode().Subscribe(ctx, c.contentFilter(), filter.WithPeer(id))
	out := []map[string]any{}
	for _, s := range subs {
		a.filterMu.Lock()
		a.filterSubs[s.ID] = &filterSub{details: s}
		a.filterMu.Unlock()
		go a.filterReadLoop(s)
		out = append(out, map[string]any{
			"peerId":        s.PeerID.String(),
			"pubsubTopic":   s.ContentFilter.PubsubTopic,
			"contentTopics": s.ContentFilter.ContentTopicsList(),
		})
	}
	if err != nil {
		return nil, &cmdError{msg: err.Error(), extra: map[string]any{"subscriptions": out}}
	}
	return map[string]any{"subscriptions": out}, nil
}

func cmdFilterUnsubscribe(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c filterArgs
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	id, err := parsePeerID(c.PeerID)
	if err != nil {
		return nil, err
	}
	ctx, cancel, err := c.ctx(a.ctx, 15*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	res, err := a.node.FilterLightnode().Unsubscribe(ctx, c.contentFilter(), filter.WithPeer(id))
	if err != nil {
		return nil, err
	}
	var errs []string
	for _, e := range res.Errors() {
		if e.Err != nil {
			errs = append(errs, e.Err.Error())
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return nil, nil
}

func cmdFilterPing(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		PeerID string `json:"peerId"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	id, err := parsePeerID(c.PeerID)
	if err != nil {
		return nil, err
	}
	ctx, cancel, err := c.ctx(a.ctx, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	return nil, a.node.FilterLightnode().Ping(ctx, id)
}

// --------------------------------------------------------------- metadata ---

func cmdMetadataQuery(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c struct {
		base
		PeerID string `json:"peerId"`
	}
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	id, err := parsePeerID(c.PeerID)
	if err != nil {
		return nil, err
	}
	ctx, cancel, err := c.ctx(a.ctx, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cancel()
	return a.meta.query(ctx, id)
}

// -------------------------------------------------------------------- enr ---

func cmdENR(a *peerApp, raw json.RawMessage) (map[string]any, error) {
	var c base
	if err := decodeArgs(raw, &c); err != nil {
		return nil, err
	}
	return map[string]any{"enr": a.node.ENR().String(), "seq": a.node.ENR().Seq()}, nil
}
