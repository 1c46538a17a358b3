use super::*;

fn message(n: u8, sender: u8) -> ChatMessage {
    let mut m = ChatMessage::new(
        MessageId([n; 16]),
        AccountId([sender; 32]),
        DeviceId([sender; 16]),
        AccountId([9; 32]),
        Body::Typed {
            kind: "k".to_owned(),
            data: Bytes::from_static(b"\x00\x01"),
        },
    )
    .at(1234);
    m.group = Some(GroupId([3; 32]));
    m.channel = Some("general".to_owned());
    m.role = Some(Role::Moderator);
    m.request = true;
    m
}

#[test]
fn a_kept_message_reads_back_whole() {
    let m = message(1, 2);
    assert_eq!(decode(&encode(&m)), Ok(m));
    assert!(decode(b"\x0a\x01").is_err(), "a short id is refused");
}

fn book(keep: usize) -> Book<Chat> {
    let storage = storage::Handle::from(murmur_test_kit::MemoryStorage::start());
    Book {
        shelf: Arc::new(Shelf::new(Some(Vault::new(b"test")), storage)),
        last: 0,
        kept: VecDeque::new(),
        horizon: i64::MIN,
        seen: HashSet::new(),
        positions: HashMap::new(),
        keep,
    }
}

#[test]
fn a_copy_is_dropped_and_the_oldest_go_only_once_passed() {
    murmur_test_kit::run(async { copies_and_retention() });
}

fn copies_and_retention() {
    let mut book = book(2);
    assert_eq!(
        book.admit(&message(1, 1)).map(|(s, r)| (s, r.len())),
        Some((1, 1))
    );
    assert!(
        book.admit(&message(1, 1)).is_none(),
        "the same id from the same sender"
    );
    assert_eq!(
        book.admit(&message(1, 2)).map(|(s, _)| s),
        Some(2),
        "another sender"
    );
    book.moved("bot".to_owned(), 0);
    let (seq, records) = book.admit(&message(2, 1)).expect("new");
    assert_eq!(
        (seq, records.len()),
        (3, 1),
        "nothing goes that the bot has not read"
    );
    book.moved("bot".to_owned(), 2);
    let (_, records) = book.admit(&message(3, 1)).expect("new");
    let gone: Vec<_> = records
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(gone, vec![message_name::<Chat>(1), message_name::<Chat>(2)]);
    assert!(
        book.admit(&message(1, 1)).is_some(),
        "forgotten once it went"
    );
}

#[test]
fn a_raw_message_reads_back_whole_and_is_kept_once_per_hash() {
    murmur_test_kit::run(async {
        let message = WakuMessage::new("/test/1/raw/proto", b"payload".to_vec())
            .with_timestamp(42)
            .with_meta(b"meta".to_vec());
        let d = Delivery::new("/waku/2/rs/1/4".parse().unwrap(), message);
        assert_eq!(Raw::decode(&Raw::encode(&d)), Ok(d.clone()));
        assert!(
            Raw::decode(b"\x0a\x02no").is_err(),
            "a bad topic is refused"
        );
        let storage = storage::Handle::from(murmur_test_kit::MemoryStorage::start());
        let shelf = Arc::new(Shelf::<Raw>::new(None, storage));
        let mut book = Book::load(shelf.clone(), 10).await.unwrap();
        let (seq, records) = book.admit(&d).expect("new");
        assert!(book.admit(&d).is_none(), "the same hash again");
        shelf.save(records).await.unwrap();
        book.settle(seq);
        assert_eq!(shelf.read(0, 10).await.unwrap(), vec![(seq, d)]);
    });
}

#[test]
fn past_the_hard_limit_the_oldest_go_even_unread() {
    murmur_test_kit::run(async {
        let mut book = book(2);
        book.moved("stopped".to_owned(), 0);
        for n in 0..=(2 * HARD_LIMIT) as u8 {
            book.admit(&message(n, 1)).expect("new");
        }
        assert_eq!(book.kept.len(), 2 * HARD_LIMIT, "the oldest went");
        assert_eq!(book.kept.front().map(|(seq, ..)| *seq), Some(2));
    });
}

/// The pipeline hands the storage stage several writes at once, and a full
/// mailbox can let a later one be committed first: a reader must not see
/// it before the earlier one, or it takes the gap for retention and passes
/// over the earlier message when it lands.
#[test]
fn a_reader_sees_a_message_only_once_every_earlier_write_is_done() {
    murmur_test_kit::run(async {
        let mut book = book(10);
        let (first, early) = book.admit(&message(1, 1)).expect("new");
        let (second, late) = book.admit(&message(2, 1)).expect("new");
        let shelf = book.shelf().clone();
        let seqs = || async {
            shelf
                .read(0, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
        };
        shelf.save(late).await.unwrap();
        assert_eq!(
            seqs().await,
            Vec::<u64>::new(),
            "the gap is a write on its way"
        );

        shelf.save(early).await.unwrap();
        book.settle(first);
        assert_eq!(seqs().await, vec![first]);
        book.settle(second);
        assert_eq!(seqs().await, vec![first, second]);

        let loaded = Book::<Chat>::load(
            Arc::new(Shelf::new(Some(Vault::new(b"test")), shelf.storage.clone())),
            10,
        )
        .await
        .unwrap();
        assert_eq!(
            loaded.shelf().settled(),
            second,
            "what a previous run wrote is settled"
        );
    });
}

/// A store round brings back what a previous run archived; the raw inbox
/// takes in one it never kept, but not one retention let go, which a
/// subscriber may have been done with: across a restart too.
#[test]
fn what_retention_let_go_is_not_taken_again_after_a_restart() {
    murmur_test_kit::run(async {
        let storage = storage::Handle::from(murmur_test_kit::MemoryStorage::start());
        let shelf = Arc::new(Shelf::<Raw>::new(None, storage));
        let stamped = |stamp: i64| {
            let message = WakuMessage::new("/test/1/raw/proto", vec![1]).with_timestamp(stamp);
            Delivery::new("/waku/2/rs/1/4".parse().unwrap(), message)
        };
        let mut book = Book::load(shelf.clone(), 1).await.unwrap();
        for stamp in [10, 20] {
            let (_, records) = book.admit(&stamped(stamp)).expect("new");
            shelf.save(records).await.unwrap();
        }
        for book in [book, Book::load(shelf.clone(), 1).await.unwrap()] {
            assert!(!book.may_take_again(&stamped(10)), "let go");
            assert!(!book.may_take_again(&stamped(20)), "kept");
            assert!(!book.may_take_again(&stamped(5)), "no newer than what went");
            assert!(book.may_take_again(&stamped(15)), "never kept, newer");
        }
    });
}

/// Anyone can stamp a message far ahead; letting it go must not move the
/// horizon past every later message for good. A horizon that does not
/// read back is refused, as a position is.
#[test]
fn a_stamp_far_ahead_moves_the_horizon_no_further_than_the_archive_window() {
    murmur_test_kit::run(async {
        let storage = storage::Handle::from(murmur_test_kit::MemoryStorage::start());
        let shelf = Arc::new(Shelf::<Raw>::new(None, storage.clone()));
        let stamped = |stamp: i64, n: u8| {
            let message = WakuMessage::new("/test/1/raw/proto", vec![n]).with_timestamp(stamp);
            Delivery::new("/waku/2/rs/1/4".parse().unwrap(), message)
        };
        let mut book = Book::load(shelf.clone(), 1).await.unwrap();
        for (stamp, n) in [(i64::MAX, 1), (1, 2)] {
            let (_, records) = book.admit(&stamped(stamp, n)).expect("new");
            shelf.save(records).await.unwrap();
        }
        let bound = murmur_core::now_nanos() + murmur_core::store::ARCHIVE_WINDOW_NANOS;
        assert!(book.horizon <= bound, "{} past {bound}", book.horizon);

        shelf
            .save(vec![(horizon_name::<Raw>(), Some(vec![1, 2, 3]))])
            .await
            .unwrap();
        assert!(matches!(Book::load(shelf, 1).await, Err(Error::Corrupt(_))));
    });
}
