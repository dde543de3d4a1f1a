//! A microphone opened through the relay: its `audio` track (hang's Opus frames, one group per
//! packet, numbered by the packet) becomes the `AudioPacket`s the audio bridge plays, as iroh's
//! datagrams do. Groups are read as they arrive, never waited for: the jitter buffer puts them
//! in order and conceals the numbers that never come. Each packet is a peer's bytes: one that
//! does not decode as a frame, or is larger than any Opus packet, ends the stream.

use std::sync::Arc;

use tokio::sync::mpsc;
use xoq_link::datagrams::DatagramRouter;
use xoq_link::framed::{ChannelItem, StreamError};
use xoq_moq::media;
use xoq_wire::AudioPacket;

/// The largest Opus packet (RFC 6716: 1275 bytes per frame, up to 3 frames of 20 ms in 60 ms).
const MAX_PACKET: usize = 3 * 1275;

/// Delivers the track's packets to `packets` until the track ends or the bridge stops
/// (`to_bridge` closed); then tells the bridge why.
pub(super) async fn pump_packets(
    mut sub: moq_net::track::Subscriber,
    device: String,
    packets: Arc<DatagramRouter>,
    to_bridge: mpsc::Sender<ChannelItem>,
) {
    let why = loop {
        let group = tokio::select! {
            _ = to_bridge.closed() => return,
            g = sub.recv_group() => g,
        };
        let mut group = match group {
            Ok(Some(g)) => g,
            Ok(None) => break format!("{device}'s audio track ended"),
            Err(e) => break format!("{device}'s audio track: {e}"),
        };
        // Packet numbers wrap at 32 bits, as on iroh (the jitter buffer compares them so).
        let seq = group.sequence as u32;
        let frame = tokio::select! {
            _ = to_bridge.closed() => return,
            f = group.read_frame() => f,
        };
        let payload = match frame {
            Ok(Some(f)) => f.payload,
            // Cut short (too late for the relay): the jitter buffer conceals it.
            Ok(None) | Err(_) => continue,
        };
        match decode(payload) {
            Ok((capture_us, data)) => packets.deliver(AudioPacket {
                device: device.clone(),
                seq,
                capture_us,
                data,
            }),
            Err(e) => break format!("{device}: {e}"),
        }
    };
    let _ = to_bridge.send(Err(StreamError::Transport(why))).await;
}

/// A frame's capture time and Opus packet, checked.
fn decode(payload: bytes::Bytes) -> Result<(u64, Vec<u8>), String> {
    let (capture_us, data) = media::decode_frame(payload).map_err(|e| e.to_string())?;
    if data.len() > MAX_PACKET {
        return Err(format!("an audio packet of {} bytes", data.len()));
    }
    Ok((capture_us, data.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_oversize_ones_are_refused() {
        let f = media::encode_frame(1_000_020, &[1, 2, 3]).expect("frame");
        assert_eq!(decode(f), Ok((1_000_020, vec![1, 2, 3])));
        let big = media::encode_frame(1, &vec![0; MAX_PACKET + 1]).expect("frame");
        assert!(decode(big).is_err());
        assert!(decode(bytes::Bytes::from_static(&[0xff])).is_err());
    }
}
