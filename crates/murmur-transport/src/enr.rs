//! The node's record for discovery (31/WAKU2-ENR): an EIP-778 record signed
//! with the node's secp256k1 key, carrying its address, its Waku capabilities
//! (`waku2`), its shards (`rs`) and, for what EIP-778 cannot express such as
//! WebSocket, `multiaddrs`.

use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId};

/// A node record with a secp256k1 ("v4") identity.
pub type Record = enr::Enr<enr::k256::ecdsa::SigningKey>;

/// The `waku2` capability bits.
pub mod capability {
    /// 11/WAKU2-RELAY.
    pub const RELAY: u8 = 1;
    /// Store.
    pub const STORE: u8 = 1 << 1;
    /// Filter.
    pub const FILTER: u8 = 1 << 2;
    /// Lightpush.
    pub const LIGHTPUSH: u8 = 1 << 3;
}

/// RLP string encoding, which is what an ENR value of raw bytes is.
fn rlp_bytes(bytes: &[u8]) -> Vec<u8> {
    match bytes.len() {
        1 if bytes[0] < 0x80 => bytes.to_vec(),
        n if n < 56 => [&[0x80 + n as u8][..], bytes].concat(),
        n => {
            let len = (n as u64).to_be_bytes();
            let skip = len.iter().take_while(|b| **b == 0).count();
            [&[0xb7 + (8 - skip) as u8][..], &len[skip..], bytes].concat()
        }
    }
}

/// Builds the node's record. `listen` are the addresses peers can reach (the
/// first IPv4 TCP one goes in `ip`/`tcp`, WebSocket ones in `multiaddrs`);
/// `udp` is the discv5 port, if the node runs discv5.
pub fn build(
    keypair: &Keypair,
    listen: &[Multiaddr],
    capabilities: u8,
    cluster: u16,
    shards: &[u16],
    udp: Option<u16>,
) -> Result<Record, String> {
    let secret = keypair
        .clone()
        .try_into_secp256k1()
        .map_err(|_| "a Waku ENR needs a secp256k1 node key".to_owned())?
        .secret()
        .to_bytes();
    let key = enr::k256::ecdsa::SigningKey::from_slice(&secret).map_err(|e| e.to_string())?;
    let mut builder = Record::builder();
    let mut multiaddrs = Vec::new();
    let mut has_ip = false;
    for addr in listen {
        let mut ip = None;
        let mut tcp = None;
        let mut ws = false;
        for p in addr.iter() {
            match p {
                Protocol::Ip4(a) => ip = Some(a),
                Protocol::Tcp(port) => tcp = Some(port),
                Protocol::Ws(_) | Protocol::Wss(_) => ws = true,
                _ => {}
            }
        }
        match (ip, tcp, ws) {
            // The first reachable IPv4 TCP address goes in ip/tcp.
            (Some(ip), Some(port), false) if !has_ip && !ip.is_unspecified() => {
                builder.ip4(ip).tcp4(port);
                if let Some(udp) = udp {
                    builder.udp4(udp);
                }
                has_ip = true;
            }
            (Some(_), Some(_), true) => {
                // Without /p2p: the record's key says who it is.
                let bytes = addr
                    .iter()
                    .filter(|p| !matches!(p, Protocol::P2p(_)))
                    .collect::<Multiaddr>()
                    .to_vec();
                multiaddrs.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                multiaddrs.extend_from_slice(&bytes);
            }
            _ => {}
        }
    }
    if !multiaddrs.is_empty() {
        builder.add_value_rlp("multiaddrs", rlp_bytes(&multiaddrs).into());
    }
    builder.add_value_rlp("waku2", rlp_bytes(&[capabilities]).into());
    let mut rs = cluster.to_be_bytes().to_vec();
    rs.push(u8::try_from(shards.len()).unwrap_or(u8::MAX));
    for shard in shards.iter().take(usize::from(u8::MAX)) {
        rs.extend_from_slice(&shard.to_be_bytes());
    }
    builder.add_value_rlp("rs", rlp_bytes(&rs).into());
    builder.build(&key).map_err(|e| e.to_string())
}

/// The record's peer id, from its secp256k1 key.
pub fn peer_id(record: &Record) -> Option<PeerId> {
    let compressed = record.public_key().to_sec1_bytes();
    let key = libp2p::identity::secp256k1::PublicKey::try_from_bytes(&compressed).ok()?;
    Some(libp2p::identity::PublicKey::from(key).to_peer_id())
}

/// Where the record says its node can be dialled, each ending in `/p2p/<id>`.
pub fn addresses(record: &Record) -> Vec<Multiaddr> {
    let Some(peer) = peer_id(record) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let (Some(ip), Some(tcp)) = (record.ip4(), record.tcp4()) {
        out.push(
            Multiaddr::empty()
                .with(Protocol::Ip4(ip))
                .with(Protocol::Tcp(tcp))
                .with(Protocol::P2p(peer)),
        );
    }
    if let Some(raw) = record.get_raw_rlp("multiaddrs") {
        if let Ok(bytes) = <alloy_rlp::Bytes as alloy_rlp::Decodable>::decode(&mut &raw[..]) {
            let mut rest = &bytes[..];
            while rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(addr) = rest.get(2..2 + len) else {
                    break;
                };
                if let Ok(addr) = Multiaddr::try_from(addr.to_vec()) {
                    out.push(addr.with(Protocol::P2p(peer)));
                }
                rest = &rest[2 + len..];
            }
        }
    }
    out
}

/// The cluster and shards the record says its node relays: the `rs` list,
/// else the `rsv` bit vector (shard `s` is bit `s % 8`, least significant
/// first, of byte `s / 8`, as nwaku and go-waku write it). `None` if it has
/// neither or they are malformed.
pub fn shards(record: &Record) -> Option<(u16, Vec<u16>)> {
    let field = |key: &str| {
        let raw = record.get_raw_rlp(key)?;
        <alloy_rlp::Bytes as alloy_rlp::Decodable>::decode(&mut &raw[..]).ok()
    };
    if let Some(rs) = field("rs") {
        let (head, list) = rs.split_at_checked(3)?;
        let count = usize::from(head[2]);
        if list.len() != 2 * count {
            return None;
        }
        let shards = list
            .chunks_exact(2)
            .map(|s| u16::from_be_bytes([s[0], s[1]]))
            .collect();
        return Some((u16::from_be_bytes([head[0], head[1]]), shards));
    }
    let rsv = field("rsv")?;
    let (cluster, bits) = rsv.split_at_checked(2)?;
    if bits.len() != 128 {
        return None;
    }
    let shards = (0..1024u16)
        .filter(|s| bits[usize::from(s / 8)] & (1 << (s % 8)) != 0)
        .collect();
    Some((u16::from_be_bytes([cluster[0], cluster[1]]), shards))
}

/// The `waku2` capability bits a record claims (see [`capability`]).
pub fn capabilities(record: &Record) -> Option<u8> {
    match record.get_raw_rlp("waku2")? {
        [bits] if *bits < 0x80 => Some(*bits),
        [0x81, bits] => Some(*bits),
        _ => None,
    }
}

/// The record as the RLP bytes peer exchange carries.
pub fn encode(record: &Record) -> Vec<u8> {
    alloy_rlp::encode(record)
}

/// A record from RLP bytes; `None` if malformed or badly signed.
pub fn decode(bytes: &[u8]) -> Option<Record> {
    let record = <Record as alloy_rlp::Decodable>::decode(&mut &bytes[..]).ok()?;
    record.verify().then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_with_its_addresses() {
        let keypair = Keypair::generate_secp256k1();
        let listen: Vec<Multiaddr> = vec![
            "/ip4/127.0.0.1/tcp/60000".parse().unwrap(),
            "/ip4/127.0.0.1/tcp/8000/ws".parse().unwrap(),
        ];
        let record = build(
            &keypair,
            &listen,
            capability::RELAY | capability::STORE,
            1,
            &[0, 4],
            None,
        )
        .unwrap();
        assert!(record.to_base64().starts_with("enr:"));
        let decoded = decode(&encode(&record)).unwrap();
        let peer = keypair.public().to_peer_id();
        assert_eq!(peer_id(&decoded), Some(peer));
        let addrs: Vec<String> = addresses(&decoded)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            addrs,
            vec![
                format!("/ip4/127.0.0.1/tcp/60000/p2p/{peer}"),
                format!("/ip4/127.0.0.1/tcp/8000/ws/p2p/{peer}"),
            ]
        );
        assert_eq!(decoded.get_raw_rlp("waku2"), Some(&[0x03][..]));
        assert_eq!(
            capabilities(&decoded),
            Some(capability::RELAY | capability::STORE)
        );
        assert_eq!(
            decoded.get_raw_rlp("rs"),
            Some(&[0x87, 0, 1, 2, 0, 0, 0, 4][..])
        );
        assert_eq!(shards(&decoded), Some((1, vec![0, 4])));
    }

    #[test]
    fn shards_are_read_from_the_bit_vector_too() {
        let key = enr::k256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let mut rsv = vec![0, 16];
        rsv.extend([0u8; 128]);
        for s in [1u16, 32, 64, 128, 256, 1023] {
            rsv[2 + usize::from(s / 8)] |= 1 << (s % 8);
        }
        let record = enr::Enr::builder()
            .add_value_rlp("rsv", rlp_bytes(&rsv).into())
            .build(&key)
            .unwrap();
        assert_eq!(shards(&record), Some((16, vec![1, 32, 64, 128, 256, 1023])));
        let short = enr::Enr::builder()
            .add_value_rlp("rs", rlp_bytes(&[0, 16, 2, 0, 32]).into())
            .build(&key)
            .unwrap();
        assert_eq!(shards(&short), None, "a count the list does not hold");
    }

    #[test]
    fn the_discv5_port_goes_in_udp_beside_tcp() {
        let listen: Vec<Multiaddr> = vec!["/ip4/127.0.0.1/tcp/60000".parse().unwrap()];
        let record = build(
            &Keypair::generate_secp256k1(),
            &listen,
            capability::RELAY,
            1,
            &[0],
            Some(9000),
        )
        .unwrap();
        assert_eq!(record.udp4(), Some(9000));
        assert_eq!(record.tcp4(), Some(60000));
    }

    #[test]
    fn garbage_and_forgeries_are_refused() {
        assert!(decode(&[0xc0]).is_none());
        assert!(decode(b"not rlp at all").is_none());
        let record = build(
            &Keypair::generate_secp256k1(),
            &[],
            capability::RELAY,
            1,
            &[],
            None,
        )
        .unwrap();
        let mut bytes = encode(&record);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(decode(&bytes).is_none());
    }
}
