// gowaku-peer: a go-waku (github.com/waku-org/go-waku v0.10.0) node for
// murmur's interop tests, driven by JSON lines on stdin/stdout.
//
//	gowaku-peer --cluster 1 --shards 0,1,2,3,4,5,6,7 [--listen /ip4/127.0.0.1/tcp/0]
//	            [--no-relay] [--subscribe] [--store [--db PATH]] [--lightpush]
//	            [--filter] [--px] [--discv5 [--discv5-port N] [--discv5-bootnodes enr:...,...]]
//
// Build (as status-go builds go-waku, without RLN):
//
//	GOTOOLCHAIN=local go build -tags gowaku_no_rln -o gowaku-peer .
//
// Everything protocol-related is go-waku's own code, used through its public
// API (node.New with WakuNodeOptions, node.Relay(), node.Store(), ...). This
// program only parses commands and prints results. stdout carries ONLY JSON
// lines (see tests/interop/README.md); every log line goes to stderr.
package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/p2p/enode"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/waku-org/go-waku/waku/persistence"
	"github.com/waku-org/go-waku/waku/persistence/sqlite"
	"github.com/waku-org/go-waku/waku/v2/node"
	"github.com/waku-org/go-waku/waku/v2/peermanager"
	wprotocol "github.com/waku-org/go-waku/waku/v2/protocol"
	"github.com/waku-org/go-waku/waku/v2/utils"
)

// ------------------------------------------------------------------ flags ---

type options struct {
	cluster         uint16
	shards          []uint16
	listen          *net.TCPAddr
	noRelay         bool
	subscribe       bool
	store           bool
	db              string
	lightpush       bool
	filter          bool
	px              bool
	discv5          bool
	discv5Port      uint
	discv5Bootnodes []*enode.Node
	maxConnsPerIP   int
	logLevel        zapcore.Level
}

// usageError makes main exit with status 2 (bad command line).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parseShards(s string) ([]uint16, error) {
	out := []uint16{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	seen := map[uint16]bool{}
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(part), 10, 16)
		if err != nil || n > uint64(wprotocol.MaxShardIndex) {
			return nil, fmt.Errorf("--shards must be a comma-separated list of integers 0..%d (got %q)", wprotocol.MaxShardIndex, part)
		}
		if !seen[uint16(n)] {
			seen[uint16(n)] = true
			out = append(out, uint16(n))
		}
	}
	return out, nil
}

// loopbackIP refuses anything but loopback: this program must never contact
// another address.
func loopbackIP(ip net.IP, what string) error {
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s must be a loopback address (got %v)", what, ip)
	}
	return nil
}

func parseArgs(args []string) (*options, error) {
	fs := flag.NewFlagSet("gowaku-peer", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	cluster := fs.Uint("cluster", 1, "cluster id (0..65535)")
	shards := fs.String("shards", "0,1,2,3,4,5,6,7", "comma-separated shard indices (ENR / metadata; relay topics with --subscribe)")
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "TCP listen multiaddr (loopback only)")
	noRelay := fs.Bool("no-relay", false, "light node: no relay (still a lightpush/filter/store client)")
	subscribe := fs.Bool("subscribe", false, "subscribe relay to /waku/2/rs/<cluster>/<shard> for every --shards entry at start")
	store := fs.Bool("store", false, "serve go-waku's store (legacy store v2 /vac/waku/store/2.0.0-beta4) from SQLite")
	db := fs.String("db", "", "SQLite file for --store (default: a temp file deleted at exit)")
	lightpush := fs.Bool("lightpush", false, "serve lightpush (/vac/waku/lightpush/2.0.0-beta1; needs relay)")
	filterFlag := fs.Bool("filter", false, "serve filter v2 (full node)")
	px := fs.Bool("px", false, "serve peer exchange (records come only from discv5: use with --discv5)")
	discv5 := fs.Bool("discv5", false, "enable discv5 (UDP; go-waku binds 0.0.0.0:<port>)")
	discv5Port := fs.Uint("discv5-port", 0, "discv5 UDP port (0 = any)")
	discv5Bootnodes := fs.String("discv5-bootnodes", "", "comma-separated discv5 bootnode ENRs (loopback only)")
	maxConnsPerIP := fs.Int("max-conns-per-ip", node.DefaultMaxConnectionsPerIP, "go-waku's inbound connection limit per IP (0 = unlimited)")
	logLevel := fs.String("log-level", "warn", "go-waku/libp2p log level on stderr: debug, info, warn")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}

	o := &options{
		noRelay:       *noRelay,
		subscribe:     *subscribe,
		store:         *store,
		db:            *db,
		lightpush:     *lightpush,
		filter:        *filterFlag,
		px:            *px,
		discv5:        *discv5,
		discv5Port:    *discv5Port,
		maxConnsPerIP: *maxConnsPerIP,
	}
	if *cluster > 65535 {
		return nil, usageError{"--cluster must be an integer 0..65535"}
	}
	o.cluster = uint16(*cluster)
	var err error
	if o.shards, err = parseShards(*shards); err != nil {
		return nil, usageError{err.Error()}
	}
	if len(o.shards) == 0 {
		// go-waku writes an empty "rs" into its ENR, and then its own metadata
		// code fails ("invalid shard count") and disconnects every peer.
		return nil, usageError{"--shards needs at least one shard (an empty list breaks go-waku's metadata protocol)"}
	}

	lma, err := ma.NewMultiaddr(*listen)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--listen: %v", err)}
	}
	na, err := manet.ToNetAddr(lma)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--listen: %v", err)}
	}
	tcpAddr, ok := na.(*net.TCPAddr)
	if !ok {
		return nil, usageError{"--listen must be /ip4/<ip>/tcp/<port> (go-waku peer: TCP only)"}
	}
	if err := loopbackIP(tcpAddr.IP, "--listen"); err != nil {
		return nil, usageError{err.Error()}
	}
	o.listen = tcpAddr

	if o.discv5Port > 65535 {
		return nil, usageError{"--discv5-port must be 0..65535"}
	}
	if strings.TrimSpace(*discv5Bootnodes) != "" {
		if !o.discv5 {
			return nil, usageError{"--discv5-bootnodes needs --discv5"}
		}
		for _, s := range strings.Split(*discv5Bootnodes, ",") {
			n, err := enode.Parse(enode.ValidSchemes, strings.TrimSpace(s))
			if err != nil {
				return nil, usageError{fmt.Sprintf("--discv5-bootnodes: %v", err)}
			}
			if err := loopbackIP(n.IP(), "a discv5 bootnode"); err != nil {
				return nil, usageError{err.Error()}
			}
			o.discv5Bootnodes = append(o.discv5Bootnodes, n)
		}
	}
	if o.discv5Port != 0 && !o.discv5 {
		return nil, usageError{"--discv5-port needs --discv5"}
	}
	if o.db != "" && !o.store {
		return nil, usageError{"--db needs --store"}
	}
	if o.lightpush && o.noRelay {
		return nil, usageError{"--lightpush needs relay (go-waku's lightpush server publishes through relay); drop --no-relay"}
	}
	if o.subscribe && o.noRelay {
		return nil, usageError{"--subscribe needs relay; drop --no-relay"}
	}
	if o.maxConnsPerIP < 0 {
		return nil, usageError{"--max-conns-per-ip must be >= 0"}
	}
	switch *logLevel {
	case "debug":
		o.logLevel = zapcore.DebugLevel
	case "info":
		o.logLevel = zapcore.InfoLevel
	case "warn":
		o.logLevel = zapcore.WarnLevel
	default:
		return nil, usageError{"--log-level must be debug, info or warn"}
	}
	return o, nil
}

// ----------------------------------------------------------------- output ---

// jsonOut is the real stdout. File descriptor 1 itself is pointed at stderr
// (see redirectStdout), so stray prints from any library (Go or C) can never
// corrupt the JSON stream.
var jsonOut *os.File

func redirectStdout() error {
	fd, err := unix.FcntlInt(uintptr(1), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return fmt.Errorf("dup stdout: %w", err)
	}
	jsonOut = os.NewFile(uintptr(fd), "json-stdout")
	if err := unix.Dup3(2, 1, 0); err != nil {
		return fmt.Errorf("redirect fd 1 to stderr: %w", err)
	}
	os.Stdout = os.Stderr
	return nil
}

func logErr(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[gowaku-peer %d] %s\n", os.Getpid(), fmt.Sprintf(format, args...))
}

// ------------------------------------------------------------------- node ---

type peerApp struct {
	opts   *options
	ctx    context.Context
	cancel context.CancelFunc
	key    *ecdsa.PrivateKey
	node   *node.WakuNode
	log    *zap.Logger
	out    *emitter
	dbPath string // temp DB to delete at exit ("" if none / user-provided)

	relaySubsMu sync.Mutex
	relaySubs   map[string]bool // pubsub topics subscribed through this program

	ownMu sync.Mutex
	own   map[string]time.Time // hashes of our own publications (not reported as "message")

	filterMu   sync.Mutex
	filterSubs map[string]*filterSub

	meta *metadataClient

	topicHealth chan peermanager.TopicHealthStatus

	shutdownOnce sync.Once
	stopped      atomic.Bool // no more commands once stopping
}

func buildNode(a *peerApp) error {
	o := a.opts
	nodeOpts := []node.WakuNodeOption{
		node.WithLogLevel(o.logLevel),
		node.WithPrivateKey(a.key),
		node.WithHostAddress(o.listen),
		node.WithClusterID(o.cluster),
		node.WithShards(o.shards),
		node.WithMaxConnectionsPerIP(o.maxConnsPerIP),
		// As cmd/waku (wakunode2) wires it: ping mesh/random relay peers and
		// filter service peers every 10 s, all relay peers every 5 min.
		node.WithKeepAlive(10*time.Second, 5*time.Minute),
		// cmd/waku mounts the filter light node (filter-push handler) always.
		node.WithWakuFilterLightNode(),
		// As status-go: consume topic-health changes. Without a consumer
		// (cmd/waku sets none) go-waku's peer manager sends on a nil channel
		// at the first health change and blocks forever.
		node.WithTopicHealthStatusChannel(a.topicHealth),
		// Not used: node.WithNTP() (would contact NTP servers), DNS discovery,
		// rendezvous, metrics/REST servers, libp2p.NATPortMap (UPnP).
	}
	if !o.noRelay {
		nodeOpts = append(nodeOpts, node.WithWakuRelay())
	}
	if o.filter {
		nodeOpts = append(nodeOpts, node.WithWakuFilterFullNode())
	}
	if o.lightpush {
		nodeOpts = append(nodeOpts, node.WithLightPush())
	}
	if o.px {
		nodeOpts = append(nodeOpts, node.WithPeerExchange())
	}
	if o.discv5 {
		nodeOpts = append(nodeOpts, node.WithDiscoveryV5(o.discv5Port, o.discv5Bootnodes, false))
	}
	if o.store {
		path := o.db
		if path == "" {
			f, err := os.CreateTemp("", "gowaku-peer-*.db")
			if err != nil {
				return fmt.Errorf("creating temp DB: %w", err)
			}
			path = f.Name()
			f.Close()
			a.dbPath = path
		}
		db, err := sqlite.NewDB(path, a.log)
		if err != nil {
			return fmt.Errorf("opening SQLite DB %s: %w", path, err)
		}
		// As cmd/waku: migrations on, retention 2 days, no message cap.
		dbStore, err := persistence.NewDBStore(prometheus.NewRegistry(), a.log,
			persistence.WithDB(db),
			persistence.WithMigrations(sqlite.Migrations),
			persistence.WithRetentionPolicy(0, 48*time.Hour),
		)
		if err != nil {
			return fmt.Errorf("setting up DB store: %w", err)
		}
		nodeOpts = append(nodeOpts, node.WithWakuStore(), node.WithMessageProvider(dbStore))
	}

	n, err := node.New(nodeOpts...)
	if err != nil {
		return fmt.Errorf("node.New: %w", err)
	}
	if o.discv5 {
		// go-waku maps the discv5 UDP port with UPnP/NAT-PMP (nat.Any) unless
		// an advertise address is set; this peer must not touch the LAN.
		n.DiscV5().NAT = nil
	}
	a.node = n
	return nil
}

func (a *peerApp) start() error {
	go func() {
		for {
			select {
			case <-a.ctx.Done():
				return
			case h := <-a.topicHealth:
				a.out.event(map[string]any{"event": "topic:health", "topic": h.Topic, "health": h.Health.String()})
			}
		}
	}()
	if err := a.node.Start(a.ctx); err != nil {
		return fmt.Errorf("node.Start: %w", err)
	}
	evSub, err := a.node.Host().EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-a.ctx.Done():
				return
			case e, ok := <-evSub.Out():
				if !ok {
					return
				}
				ev := e.(event.EvtPeerConnectednessChanged)
				switch ev.Connectedness {
				case network.Connected:
					a.out.event(map[string]any{"event": "peer:connect", "peerId": ev.Peer.String()})
				case network.NotConnected:
					a.out.event(map[string]any{"event": "peer:disconnect", "peerId": ev.Peer.String()})
				}
			}
		}
	}()
	if a.opts.discv5 {
		if err := a.node.DiscV5().Start(a.ctx); err != nil {
			return fmt.Errorf("starting discv5: %w", err)
		}
	}
	if a.opts.subscribe {
		for _, s := range a.opts.shards {
			topic := wprotocol.NewStaticShardingPubsubTopic(a.opts.cluster, s).String()
			if _, err := a.relaySubscribe(topic); err != nil {
				return fmt.Errorf("subscribing to %s: %w", topic, err)
			}
		}
	}
	a.meta, err = newMetadataClient(a)
	if err != nil {
		return err
	}
	return nil
}

func (a *peerApp) protocols() []string {
	var ps []string
	for _, p := range a.node.Host().Mux().Protocols() {
		ps = append(ps, string(p))
	}
	sort.Strings(ps)
	return ps
}

func (a *peerApp) shutdown(code int) {
	a.shutdownOnce.Do(func() {
		a.stopped.Store(true)
		a.out.stop()
		go func() {
			done := make(chan struct{})
			go func() {
				defer func() { _ = recover() }()
				if a.node != nil {
					a.node.Stop()
				}
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				logErr("node.Stop did not finish within 3 s; exiting anyway")
				if os.Getenv("GOWAKU_PEER_STACKS") != "" {
					_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
				}
			}
			a.cancel()
			a.removeTempDB()
			os.Exit(code)
		}()
	})
}

func (a *peerApp) removeTempDB() {
	if a.dbPath == "" {
		return
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		_ = os.Remove(a.dbPath + suffix)
	}
}

func main() {
	opts, err := parseArgs(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "gowaku-peer: %v\n", err)
		os.Exit(2)
	}
	if err := redirectStdout(); err != nil {
		fmt.Fprintf(os.Stderr, "gowaku-peer: %v\n", err)
		os.Exit(1)
	}
	// go-waku's utils.Logger() would otherwise initialise itself to stdout.
	utils.InitLogger("nocolor", "stdout", "gowaku", opts.logLevel)

	ctx, cancel := context.WithCancel(context.Background())
	a := &peerApp{
		opts:        opts,
		ctx:         ctx,
		cancel:      cancel,
		log:         utils.Logger(),
		out:         newEmitter(jsonOut),
		relaySubs:   map[string]bool{},
		own:         map[string]time.Time{},
		filterSubs:  map[string]*filterSub{},
		topicHealth: make(chan peermanager.TopicHealthStatus, 64),
	}
	a.out.onBroken = func() { a.shutdown(0) }

	sigCh := make(chan os.Signal, 1)
	signal.Notify(sigCh, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigCh
		a.shutdown(0)
	}()

	if a.key, err = ethcrypto.GenerateKey(); err != nil {
		logErr("generating key: %v", err)
		os.Exit(1)
	}
	if err := buildNode(a); err != nil {
		logErr("%v", err)
		a.removeTempDB()
		os.Exit(1)
	}
	if err := a.start(); err != nil {
		logErr("%v", err)
		a.node.Stop()
		a.removeTempDB()
		os.Exit(1)
	}
	go a.cleanOwnLoop()

	var addrs []string
	for _, m := range a.node.ListenAddresses() {
		addrs = append(addrs, m.String())
	}
	a.out.event(map[string]any{
		"event":     "ready",
		"peerId":    a.node.Host().ID().String(),
		"addrs":     addrs,
		"enr":       a.node.ENR().String(),
		"cluster":   opts.cluster,
		"shards":    opts.shards,
		"relay":     !opts.noRelay,
		"protocols": a.protocols(),
	})

	a.readCommands(os.Stdin)
	// stdin EOF
	a.shutdown(0)
	select {}
}
