//! Cuts a stream of samples, delivered in chunks of any size, into wire packets of a fixed
//! number of frames, each with its sequence number and the capture time of its first frame.

use xoq_wire::{AudioPacket, AudioSettings};

use crate::codec::{CodecError, PacketEncoder};

/// Packs samples of one device into [`AudioPacket`]s.
#[derive(Debug)]
pub struct Packetizer {
    device: String,
    channels: usize,
    rate: u32,
    packet_frames: usize,
    encoder: PacketEncoder,
    pending: Vec<f32>,
    /// Capture time of `pending[0]`, microseconds since the Unix epoch.
    pending_us: u64,
    seq: u32,
}

impl Packetizer {
    /// Packets of `settings.packet_frames`, coded by `encoder`.
    pub fn new(device: &str, settings: &AudioSettings, encoder: PacketEncoder) -> Self {
        Packetizer {
            device: device.to_string(),
            channels: usize::from(settings.format.channels).max(1),
            rate: settings.format.rate,
            packet_frames: usize::from(settings.packet_frames).max(1),
            encoder,
            pending: Vec::new(),
            pending_us: 0,
            seq: 0,
        }
    }

    /// Adds interleaved `samples` whose first frame was captured at `capture_us`, and appends
    /// every packet that is now full to `out`.
    pub fn push(
        &mut self,
        samples: &[f32],
        capture_us: u64,
        out: &mut Vec<AudioPacket>,
    ) -> Result<(), CodecError> {
        let channels = self.channels;
        if self.pending.is_empty() {
            self.pending_us = capture_us;
        }
        self.pending.extend_from_slice(samples);
        let per_packet = self.packet_frames * channels;
        let mut start = 0;
        while self.pending.len() - start >= per_packet {
            let mut data = Vec::new();
            self.encoder
                .encode(&self.pending[start..start + per_packet], &mut data)?;
            out.push(AudioPacket {
                device: self.device.clone(),
                seq: self.seq,
                capture_us: self.pending_us,
                data,
            });
            self.seq = self.seq.wrapping_add(1);
            self.pending_us += self.packet_frames as u64 * 1_000_000 / u64::from(self.rate);
            start += per_packet;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Sequence number of the next packet.
    pub fn next_seq(&self) -> u32 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xoq_wire::{AudioDirection, AudioFormat, SampleFormat};

    #[test]
    fn packets_have_fixed_size_consecutive_seq_and_capture_times() {
        let settings = AudioSettings {
            direction: AudioDirection::Capture,
            format: AudioFormat {
                rate: 48_000,
                channels: 2,
                sample: SampleFormat::S16,
            },
            packet_frames: 480,
        };
        let enc = PacketEncoder::new(&settings, 0).expect("encoder");
        let mut p = Packetizer::new("mic0", &settings, enc);
        let mut out = Vec::new();
        // 25 ms in chunks of 7 ms, starting at t = 1 s.
        let mut t = 1_000_000;
        for _ in 0..4 {
            p.push(&vec![0.1; 2 * 336], t, &mut out).expect("push");
            t += 7_000;
        }
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|p| p.data.len() == 480 * 4));
        assert_eq!((out[0].seq, out[0].capture_us), (0, 1_000_000));
        assert_eq!((out[1].seq, out[1].capture_us), (1, 1_010_000));
        assert_eq!(p.next_seq(), 2);
    }
}
