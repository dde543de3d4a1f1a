//! Property tests of the wire codec: round trips, streaming, header limits, truncation and
//! decoder poisoning (hand-written byte vectors are in byte_layout.rs).

mod common;

use proptest::prelude::*;
use proptest::sample::Index;
use xoq_wire::{Delivery, FrameDecoder, Message, WireError};

use common::*;

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (a) encode, then decode the body: the same message, and the header respects the limit.
    #[test]
    fn encode_decode_roundtrip(m in message()) {
        let bytes = m.to_bytes();
        let (t, body) = split_frame(&bytes);
        let max = limit_of(t).expect("encoder used a known type");
        prop_assert!(body.len() <= max, "{} body of {} bytes over limit {}", m.name(), body.len(), max);
        prop_assert_eq!(Message::decode(t, body), Ok(m.clone()));

        // Appending to a non-empty buffer frames the same bytes.
        let mut out = vec![0xAA, 0xBB];
        m.encode(&mut out);
        prop_assert_eq!(&out[2..], &bytes[..]);
    }

    /// (b) a random sequence, concatenated and cut at random places, comes out whole and in
    /// order, then the decoder wants more bytes and holds nothing.
    #[test]
    fn stream_split_at_random_boundaries(
        msgs in prop::collection::vec(message(), 0..12),
        cuts in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        let mut cut_at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cut_at.push(0);
        cut_at.push(stream.len());
        cut_at.sort_unstable();
        cut_at.dedup();

        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for w in cut_at.windows(2) {
            dec.push(&stream[w[0]..w[1]]);
            drain(&mut dec, &mut got).expect("valid stream must decode");
        }
        prop_assert_eq!(&got, &msgs);
        prop_assert_eq!(dec.next_message(), Ok(None));
        prop_assert_eq!(dec.pending(), 0);
    }

    /// (b') the same, byte by byte, for small messages.
    #[test]
    fn stream_byte_by_byte(msgs in prop::collection::vec(message().prop_filter("small", |m| m.to_bytes().len() < 2048), 0..6)) {
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &stream {
            dec.push(std::slice::from_ref(b));
            drain(&mut dec, &mut got).expect("valid stream must decode");
        }
        prop_assert_eq!(&got, &msgs);
        prop_assert_eq!(dec.next_message(), Ok(None));
        prop_assert_eq!(dec.pending(), 0);
    }

    /// (c) a header over its type's limit is refused on its five bytes alone, even after
    /// valid messages on the same stream.
    #[test]
    fn over_limit_header_rejected_before_body(
        prefix in prop::collection::vec(message(), 0..3),
        entry in prop::sample::select(TYPE_LIMITS.to_vec()),
        excess in prop_oneof![Just(1u64), 1u64..=1024, 1u64..=u64::from(u32::MAX)],
    ) {
        let (t, max) = entry;
        let len = (max as u64).saturating_add(excess).min(u64::from(u32::MAX)) as u32;
        prop_assume!(len as usize > max);
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        let mut stream = Vec::new();
        for m in &prefix {
            m.encode(&mut stream);
        }
        dec.push(&stream);
        drain(&mut dec, &mut got).unwrap();
        prop_assert_eq!(&got, &prefix);
        dec.push(&header(t, len));
        prop_assert_eq!(
            dec.next_message(),
            Err(WireError::TooLong { ty: t, len: len as usize, max })
        );
    }

    /// (c) an unknown type byte is refused on its header, whatever length it declares.
    #[test]
    fn unknown_type_rejected_on_header(t in any::<u8>(), len in any::<u32>()) {
        prop_assume!(limit_of(t).is_none());
        let mut dec = FrameDecoder::new();
        dec.push(&header(t, len));
        prop_assert_eq!(dec.next_message(), Err(WireError::UnknownType(t)));
        prop_assert_eq!(Message::decode(t, &[]), Err(WireError::UnknownType(t)));
    }

    /// (d) every message but `Data` (whose body is all payload) fails when its body is cut
    /// short, both via `Message::decode` and via a frame whose header declares the cut length.
    #[test]
    fn truncated_body_is_an_error(m in message(), cut in any::<Index>()) {
        let bytes = m.to_bytes();
        let (t, body) = split_frame(&bytes);
        prop_assume!(!body.is_empty());
        let drop = 1 + cut.index(body.len()); // 1..=body.len()
        let short = &body[..body.len() - drop];
        if let Message::Data(_) = m {
            // A shorter Data body is a shorter, valid Data message.
            prop_assert_eq!(Message::decode(t, short), Ok(Message::Data(short.to_vec())));
        } else if let Some((base, tail)) = without_optional_tail(&m).filter(|(_, tail)| *tail == drop) {
            // Cut exactly at an optional trailing field: the message without it.
            prop_assert_eq!(Message::decode(t, short), Ok(base), "{} bytes of tail", tail);
        } else {
            prop_assert!(Message::decode(t, short).is_err(), "{} decoded from {} of {} bytes", m.name(), short.len(), body.len());
            let mut dec = FrameDecoder::new();
            dec.push(&header(t, short.len() as u32));
            dec.push(short);
            prop_assert!(dec.next_message().is_err());
        }
    }

    /// (d) arbitrary bodies never panic the decoder; whatever decodes re-encodes to itself.
    #[test]
    fn arbitrary_body_never_panics(t in prop_oneof![prop::sample::select(TYPE_LIMITS.iter().map(|e| e.0).collect::<Vec<_>>()), any::<u8>()],
                                   body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(m) = Message::decode(t, &body) {
            let bytes = m.to_bytes();
            let (t2, body2) = split_frame(&bytes);
            prop_assert_eq!(t2, t);
            prop_assert_eq!(body2, &body[..]);
        }
    }

    /// (d) a valid body with trailing bytes is an error too (except Data).
    #[test]
    fn trailing_bytes_are_an_error(m in message(), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        prop_assume!(!matches!(m, Message::Data(_)));
        let bytes = m.to_bytes();
        let (t, body) = split_frame(&bytes);
        let mut long = body.to_vec();
        long.extend_from_slice(&extra);
        prop_assert!(Message::decode(t, &long).is_err());
    }

    /// (e) once the decoder has failed, it keeps failing with the same error, whatever arrives.
    #[test]
    fn decoder_stays_poisoned(
        garbage in prop::collection::vec(any::<u8>(), 0..512),
        more in prop::collection::vec(message(), 0..4),
    ) {
        let mut dec = FrameDecoder::new();
        dec.push(&garbage);
        let mut got = Vec::new();
        let err = match drain(&mut dec, &mut got) {
            Ok(()) => {
                // Garbage that happened to be valid: poison it explicitly.
                dec.push(&header(0xFF, 0));
                dec.next_message().unwrap_err()
            }
            Err(e) => e,
        };
        for _ in 0..3 {
            prop_assert_eq!(dec.next_message(), Err(err.clone()));
        }
        for m in &more {
            dec.push(&m.to_bytes());
            prop_assert_eq!(dec.next_message(), Err(err.clone()));
        }
    }
}

/// `m` without its optional trailing field, and that field's length, if it has one set:
/// `Open.delivery` and `CanCounters.tx_superseded` (version 4) are encoded only when not at
/// their default.
fn without_optional_tail(m: &Message) -> Option<(Message, usize)> {
    match m {
        Message::Open {
            device,
            access,
            writer,
            delivery,
        } if *delivery != Delivery::Ordered => Some((
            Message::Open {
                device: device.clone(),
                access: *access,
                writer: *writer,
                delivery: Delivery::Ordered,
            },
            1,
        )),
        Message::CanCounters(c) if c.tx_superseded != 0 => Some((
            Message::CanCounters(xoq_wire::CanCounters {
                tx_superseded: 0,
                ..*c
            }),
            8,
        )),
        _ => None,
    }
}
