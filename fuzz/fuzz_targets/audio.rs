//! Feeds arbitrary packets to the receiving side of an audio link, as a hostile peer could:
//! the first bytes choose the catalog format (PCM S16/F32 or Opus, rate, channels, frames per
//! packet), the rest are packets (a sequence number and a length prefix each) decoded by
//! `PacketDecoder` and pushed into a `JitterBuffer` that is pulled between them.
//!
//! A packet either decodes to whole frames of the catalog format (1 to a packet's worth of
//! PCM, exactly a packet's worth of Opus) or is refused, appending nothing; the buffer's output stays finite. Nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xoq_audio::codec::PacketDecoder;
use xoq_audio::{JitterBuffer, JitterConfig};
use xoq_wire::{AudioDirection, AudioFormat, AudioSettings, SampleFormat};

fuzz_target!(|data: &[u8]| {
    let Some((head, mut rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let sample = match head[0] % 3 {
        0 => SampleFormat::S16,
        1 => SampleFormat::F32,
        _ => SampleFormat::Opus,
    };
    let rate = AudioFormat::OPUS_RATES[usize::from(head[1]) % 5];
    let format = AudioFormat {
        rate,
        channels: 1 + head[1] / 128,
        sample,
    };
    // 10 or 20 ms: valid for every format here.
    let packet_frames = (rate / 100) as u16 * (1 + u16::from(head[2] % 2));
    let settings = AudioSettings {
        direction: AudioDirection::Capture,
        format,
        packet_frames,
    };
    let Ok(mut decoder) = PacketDecoder::new(&settings) else {
        return;
    };
    let channels = usize::from(format.channels);
    let mut jb = JitterBuffer::new(JitterConfig::new(
        rate,
        channels,
        usize::from(packet_frames),
        20,
    ));
    let mut samples = Vec::new();
    let mut out = vec![0.0; 256 * channels];
    let mut now = 0u64;
    while let Some((h, tail)) = rest.split_first_chunk::<3>() {
        let seq = u32::from(h[0]);
        let len = usize::from(u16::from_be_bytes([h[1], h[2]])).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        samples.clear();
        match decoder.decode(packet, &mut samples) {
            // PCM may carry fewer frames than a packet (whole ones); Opus exactly a packet.
            Ok(()) => {
                let frames = samples.len() / channels;
                assert_eq!(frames * channels, samples.len(), "partial frame");
                match sample {
                    SampleFormat::Opus => assert_eq!(frames, usize::from(packet_frames)),
                    _ => assert!((1..=usize::from(packet_frames)).contains(&frames)),
                }
            }
            Err(_) => assert!(samples.is_empty(), "a refused packet left samples behind"),
        }
        jb.push(seq, &samples, now);
        jb.pull(&mut out, now);
        assert!(out.iter().all(|s| s.is_finite()), "non-finite output");
        now += 5_000;
    }
});
