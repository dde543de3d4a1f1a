//! Software H.264 with OpenH264 (built from its bundled source: no system library), set up for
//! live video: the real-time camera profile, no B-frames (OpenH264 has none), a keyframe every
//! `gop` frames and on request, one access unit (Annex B) per picture in and out.

use openh264::decoder::{Decoder as OhDecoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder as OhEncoder, EncoderConfig, FrameRate, FrameType,
    IntraFramePeriod, QpRange, RateControlMode, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};
use openh264::OpenH264API;
use thiserror::Error;

use crate::picture::{Picture, PixelFormat};

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("H.264 encoder: {0}")]
    Encode(String),
    #[error("H.264 decoder: {0}")]
    Decode(String),
    #[error("picture is {0:?}, the encoder takes I420")]
    Format(PixelFormat),
}

/// Lowest bit rate a live change may set.
pub const MIN_BITRATE: u32 = 100_000;

/// Coarsest quantizer the encoder may use (0 finest, 51 coarsest).
const MAX_QP: u8 = 36;

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct EncoderSettings {
    pub width: usize,
    pub height: usize,
    pub fps: u16,
    /// Target bit rate; `None` picks 0.1 bit per pixel per frame (about 2.8 Mbit/s at 720p30).
    pub bitrate_bps: Option<u32>,
    /// Frames between keyframes.
    pub gop: u32,
}

impl EncoderSettings {
    /// The bit rate these settings give the encoder.
    pub fn bitrate(&self) -> u32 {
        self.bitrate_bps.unwrap_or_else(|| {
            let bits = self.width as f64 * self.height as f64 * f64::from(self.fps) * 0.1;
            bits.clamp(100_000.0, 50_000_000.0) as u32
        })
    }
}

/// One encoded picture.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Annex B NAL units (with SPS/PPS before every keyframe).
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// A live H.264 encoder.
pub struct Encoder {
    inner: OhEncoder,
    settings: EncoderSettings,
    current_bitrate: u32,
    /// Whether a picture was encoded (OpenH264 is initialised then, and takes options).
    started: bool,
}

impl Encoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        Ok(Encoder {
            inner: Self::made_at(settings, settings.bitrate())?,
            settings,
            current_bitrate: settings.bitrate(),
            started: false,
        })
    }

    /// An OpenH264 encoder for `settings` that will start at `bps` (it initialises itself at
    /// its first picture, with this rate as its maximum too).
    fn made_at(settings: EncoderSettings, bps: u32) -> Result<OhEncoder, CodecError> {
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bps))
            .max_frame_rate(FrameRate::from_hz(f32::from(settings.fps)))
            .intra_frame_period(IntraFramePeriod::from_num_frames(settings.gop))
            .complexity(Complexity::Low)
            // A quality floor: the rate control starts a stream (and each keyframe) coarse,
            // and a viewer's first picture must not be a blur. Costs bits only on those.
            .qp(QpRange::new(0, MAX_QP))
            // A late frame is worse than a worse frame: never skip, never wait.
            .skip_frames(false)
            .scene_change_detect(false)
            .background_detection(false);
        OhEncoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// Changes the target bit rate from the next picture on, without a keyframe (the link's
    /// capacity changed). Rates above the one the encoder was made with are capped to it.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        use openh264_sys2::ENCODER_OPTION_BITRATE;
        let bps = bps.clamp(MIN_BITRATE, self.settings.bitrate());
        if !self.started {
            // OpenH264 initialises itself at its first picture and refuses options before
            // (error 4). Not started yet, it is made again to start at this rate: its first
            // keyframe is sized for it (started at the ceiling, or on a blank picture and then
            // lowered, a 720p stream's first keyframe was 93-207 kB instead of 51 at 2 Mbit/s,
            // and queued a third of a second on a slow link). Its maximum goes up to the
            // ceiling after that first picture (`encode`).
            self.inner = Self::made_at(self.settings, bps)?;
            self.current_bitrate = bps;
            return Ok(());
        }
        self.set_rate_option(ENCODER_OPTION_BITRATE, bps)?;
        self.current_bitrate = bps;
        Ok(())
    }

    /// Sets a bit rate option of layer 0 (its target or its maximum) on the running encoder.
    fn set_rate_option(
        &mut self,
        option: openh264_sys2::ENCODER_OPTION,
        bps: u32,
    ) -> Result<(), CodecError> {
        use openh264_sys2::{SBitrateInfo, SPATIAL_LAYER_0};
        let mut info = SBitrateInfo {
            iLayer: SPATIAL_LAYER_0,
            iBitrate: i32::try_from(bps).unwrap_or(i32::MAX),
        };
        // SAFETY: FFI edge. `raw_api` is the encoder `self.inner`, initialised by its first
        // picture (callers check `started`); the crate never sets these two options itself.
        // SetOption(ENCODER_OPTION_BITRATE / _MAX_BITRATE) reads one SBitrateInfo through the
        // pointer during the call and keeps no reference to it; `info` outlives the call.
        let rc = unsafe {
            self.inner
                .raw_api()
                .set_option(option, (&raw mut info).cast())
        };
        if rc != 0 {
            return Err(CodecError::Encode(format!(
                "cannot set the bit rate (option {option}) to {bps} bit/s (OpenH264 error {rc})"
            )));
        }
        Ok(())
    }

    /// The bit rate the encoder aims at now.
    pub fn bitrate(&self) -> u32 {
        self.current_bitrate
    }

    /// Makes the next picture a keyframe (IDR).
    pub fn force_keyframe(&mut self) {
        self.inner.force_intra_frame();
    }

    /// Encodes one I420 picture of the configured size.
    pub fn encode(&mut self, p: &Picture) -> Result<Encoded, CodecError> {
        if p.format != PixelFormat::I420 {
            return Err(CodecError::Format(p.format));
        }
        let (w, h) = (p.width, p.height);
        let ys = w * h;
        let yuv = YUVSlices::new(
            (
                &p.data[..ys],
                &p.data[ys..ys + ys / 4],
                &p.data[ys + ys / 4..],
            ),
            (w, h),
            (w, w / 2, w / 2),
        );
        let bs = self
            .inner
            .encode(&yuv)
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        let keyframe = matches!(bs.frame_type(), FrameType::IDR | FrameType::I);
        let data = bs.to_vec();
        if !self.started {
            self.started = true;
            // Made at a lower start rate (`set_bitrate`): that rate is also OpenH264's maximum
            // until it is lifted to the ceiling, now that it takes options.
            if self.current_bitrate < self.settings.bitrate() {
                self.set_rate_option(
                    openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
                    self.settings.bitrate(),
                )?;
            }
        }
        Ok(Encoded { data, keyframe })
    }
}

/// A live H.264 decoder.
pub struct Decoder {
    inner: OhDecoder,
}

impl Decoder {
    pub fn new() -> Result<Self, CodecError> {
        let inner = OhDecoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| CodecError::Decode(e.to_string()))?;
        Ok(Decoder { inner })
    }

    /// Decodes one access unit; `Ok(None)` when it completes no picture (yet).
    pub fn decode(&mut self, au: &[u8]) -> Result<Option<Picture>, CodecError> {
        let Some(yuv) = self
            .inner
            .decode(au)
            .map_err(|e| CodecError::Decode(e.to_string()))?
        else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        let mut data = Vec::with_capacity(w * h * 3 / 2);
        for row in 0..h {
            data.extend_from_slice(&yuv.y()[row * sy..row * sy + w]);
        }
        for row in 0..h / 2 {
            data.extend_from_slice(&yuv.u()[row * su..row * su + w / 2]);
        }
        for row in 0..h / 2 {
            data.extend_from_slice(&yuv.v()[row * sv..row * sv + w / 2]);
        }
        Ok(Picture::new(PixelFormat::I420, w, h, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{pattern, quality};

    #[test]
    fn the_pattern_survives_encoding_with_its_numbers_and_good_psnr() {
        let (w, h) = (640, 480);
        let mut enc = Encoder::new(EncoderSettings {
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: None,
            gop: 30,
        })
        .unwrap();
        let mut dec = Decoder::new().unwrap();
        for n in 0..40u32 {
            if n == 35 {
                enc.force_keyframe();
            }
            let src = pattern::render(w, h, n);
            let e = enc.encode(&src).unwrap();
            assert_eq!(
                e.keyframe,
                n == 0 || n == 30 || n == 35,
                "frame {n}: keyframes at 0, every 30, and on request"
            );
            let out = dec
                .decode(&e.data)
                .unwrap()
                .expect("one picture per access unit");
            assert_eq!(pattern::read(out.y_plane(), w, h), Some(n as u16));
            let psnr = quality::psnr(out.y_plane(), src.y_plane());
            assert!(psnr >= 30.0, "frame {n}: PSNR {psnr:.1} dB");
        }
    }

    #[test]
    fn a_lower_bit_rate_takes_effect_without_a_keyframe() {
        let (w, h) = (640, 480);
        let mut enc = Encoder::new(EncoderSettings {
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: Some(4_000_000),
            gop: 1000,
        })
        .unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut bytes = [0usize; 2];
        for n in 0..120u32 {
            if n == 60 {
                enc.set_bitrate(400_000).unwrap();
                assert_eq!(enc.bitrate(), 400_000);
            }
            // With grain, as a camera's picture: the plain pattern needs less than either rate.
            let mut p = pattern::render(w, h, n);
            pattern::add_grain(&mut p, n, 12);
            let e = enc.encode(&p).unwrap();
            assert_eq!(e.keyframe, n == 0, "frame {n}");
            // Both halves' last 30 frames, once the rate control has settled.
            if n % 60 >= 30 {
                bytes[n as usize / 60] += e.data.len();
            }
            let out = dec.decode(&e.data).unwrap().expect("a picture");
            assert_eq!(pattern::read(out.y_plane(), w, h), Some(n as u16));
        }
        // 30 frames at 30 fps: one second's bits against the targets.
        let (high, low) = (bytes[0] * 8, bytes[1] * 8);
        assert!(low * 3 < high, "{high} bit/s then {low} bit/s");
        assert!(
            low <= 400_000 * 3 / 2,
            "{low} bit/s for a 400 kbit/s target"
        );
        enc.set_bitrate(50_000_000).unwrap();
        assert_eq!(
            enc.bitrate(),
            4_000_000,
            "capped to the rate it was made with"
        );
    }

    #[test]
    fn a_bit_rate_set_before_the_first_picture_holds_from_it_and_can_rise_to_the_ceiling() {
        let (w, h) = (640, 480);
        let settings = EncoderSettings {
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: Some(4_000_000),
            gop: 1000,
        };
        // One second of grainy pictures (as a camera's), its bits.
        let second = |enc: &mut Encoder, from: u32| -> usize {
            (from..from + 30)
                .map(|n| {
                    let mut p = pattern::render(w, h, n);
                    pattern::add_grain(&mut p, n, 12);
                    enc.encode(&p).unwrap().data.len() * 8
                })
                .sum()
        };
        let mut full = Encoder::new(settings).unwrap();
        let at_ceiling = second(&mut full, 0);
        // OpenH264 refuses options until its first picture (error 4); the rate set before it
        // holds from that picture on, and the ceiling is still reachable after it.
        let mut enc = Encoder::new(settings).unwrap();
        enc.set_bitrate(400_000).unwrap();
        assert_eq!(enc.bitrate(), 400_000);
        let first = second(&mut enc, 0);
        assert!(
            first * 3 < at_ceiling,
            "{at_ceiling} bit/s, then {first} bit/s"
        );
        let low = second(&mut enc, 30);
        // The ceiling is still the rate it was made with.
        enc.set_bitrate(4_000_000).unwrap();
        second(&mut enc, 60);
        let high = second(&mut enc, 90);
        assert!(high > low * 2, "{low} bit/s, then back up: {high} bit/s");
        enc.set_bitrate(50_000_000).unwrap();
        assert_eq!(enc.bitrate(), 4_000_000);
        // The first one out is a keyframe of the first picture, readable.
        let mut enc = Encoder::new(settings).unwrap();
        enc.set_bitrate(400_000).unwrap();
        let e = enc.encode(&pattern::render(w, h, 7)).unwrap();
        assert!(e.keyframe);
        let out = Decoder::new()
            .unwrap()
            .decode(&e.data)
            .unwrap()
            .expect("a picture");
        assert_eq!(pattern::read(out.y_plane(), w, h), Some(7));
    }

    #[test]
    fn a_stream_lowered_before_its_first_picture_starts_with_a_keyframe_sized_for_its_rate() {
        let (w, h) = (1280, 720);
        let settings = |bps| EncoderSettings {
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: Some(bps),
            gop: 1000,
        };
        let grainy = |n| {
            let mut p = pattern::render(w, h, n);
            pattern::add_grain(&mut p, n, 12);
            p
        };
        // Made at the 16 Mbit/s ceiling and lowered to 2 Mbit/s before its first picture, as
        // a camera stream starts; and made at 2 Mbit/s.
        let mut lowered = Encoder::new(settings(16_000_000)).unwrap();
        lowered.set_bitrate(2_000_000).unwrap();
        let mut made_low = Encoder::new(settings(2_000_000)).unwrap();
        let first = lowered.encode(&grainy(0)).unwrap();
        let reference = made_low.encode(&grainy(0)).unwrap();
        assert!(first.keyframe);
        // Started on a blank picture at the ceiling and then lowered, it was 207 kB (51 made
        // at the rate).
        assert!(
            first.data.len() <= reference.data.len() * 5 / 4,
            "first keyframe {} bytes, {} made at the rate",
            first.data.len(),
            reference.data.len()
        );
    }
}
