//! The H.264 encoder a camera uses: OpenH264 in software, or NVENC on an NVIDIA GPU (cargo
//! feature `nvenc`), chosen by name; `auto` takes NVENC when the GPU and driver are there and
//! software otherwise.

use crate::h264::{CodecError, Encoded, Encoder, EncoderSettings};
use crate::picture::Picture;

/// Which encoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    /// NVENC if this build has it and the machine can run it, else software.
    #[default]
    Auto,
    /// OpenH264 on the CPU.
    Software,
    /// NVENC, or fail.
    Nvenc,
}

impl std::str::FromStr for EncoderChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(EncoderChoice::Auto),
            "software" => Ok(EncoderChoice::Software),
            "nvenc" => Ok(EncoderChoice::Nvenc),
            _ => Err(format!("encoder `{s}` is not auto, software or nvenc")),
        }
    }
}

/// Whether this build can use NVENC at all.
pub const NVENC_BUILT: bool = cfg!(feature = "nvenc");

/// An open H.264 encoder of either kind.
pub enum AnyEncoder {
    // Boxed: OpenH264's encoder state is several kilobytes.
    Software(Box<Encoder>),
    #[cfg(feature = "nvenc")]
    Nvenc {
        enc: crate::nvenc::NvencEncoder,
        keyframe_next: bool,
    },
}

impl AnyEncoder {
    /// Opens the chosen encoder; with `Auto`, says in `fallback` why NVENC was not used.
    pub fn open(
        choice: EncoderChoice,
        settings: EncoderSettings,
        fallback: &mut Option<String>,
    ) -> Result<AnyEncoder, CodecError> {
        match choice {
            EncoderChoice::Software => Ok(AnyEncoder::Software(Box::new(Encoder::new(settings)?))),
            EncoderChoice::Nvenc => Self::nvenc(settings),
            EncoderChoice::Auto => match Self::nvenc(settings) {
                Ok(e) => Ok(e),
                Err(e) => {
                    *fallback = Some(e.to_string());
                    Ok(AnyEncoder::Software(Box::new(Encoder::new(settings)?)))
                }
            },
        }
    }

    #[cfg(feature = "nvenc")]
    fn nvenc(s: EncoderSettings) -> Result<AnyEncoder, CodecError> {
        let enc = crate::nvenc::NvencEncoder::with_settings(crate::nvenc::NvencSettings {
            width: s.width as u32,
            height: s.height as u32,
            fps: s.fps,
            bitrate_bps: s.bitrate_bps,
            gop: Some(s.gop.max(1)),
            input: crate::nvenc::InputFormat::I420,
            device: 0,
        })
        .map_err(|e| CodecError::Encode(e.to_string()))?;
        Ok(AnyEncoder::Nvenc {
            enc,
            keyframe_next: true,
        })
    }

    #[cfg(not(feature = "nvenc"))]
    fn nvenc(_: EncoderSettings) -> Result<AnyEncoder, CodecError> {
        Err(CodecError::Encode(
            "NVENC: this build has no NVENC support (build with --features nvenc)".into(),
        ))
    }

    /// For logs: `OpenH264 (software)` or `NVENC`.
    pub fn describe(&self) -> &'static str {
        match self {
            AnyEncoder::Software(_) => "OpenH264 (software)",
            #[cfg(feature = "nvenc")]
            AnyEncoder::Nvenc { .. } => "NVENC",
        }
    }

    /// Makes the next picture a keyframe (IDR).
    pub fn force_keyframe(&mut self) {
        match self {
            AnyEncoder::Software(e) => e.force_keyframe(),
            #[cfg(feature = "nvenc")]
            AnyEncoder::Nvenc { keyframe_next, .. } => *keyframe_next = true,
        }
    }

    /// Changes the target bit rate live (congestion feedback), capped to the rate the encoder
    /// was opened with. NVENC's encoder is not reconfigured live here: it says so.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        match self {
            AnyEncoder::Software(e) => e.set_bitrate(bps),
            #[cfg(feature = "nvenc")]
            AnyEncoder::Nvenc { .. } => Err(CodecError::Encode(
                "NVENC: the bit rate cannot be changed while encoding; the stream keeps its configured rate (use encoder = \"software\" on links slower than it)".into(),
            )),
        }
    }

    /// Encodes one I420 picture of the configured size.
    pub fn encode(&mut self, p: &Picture) -> Result<Encoded, CodecError> {
        match self {
            AnyEncoder::Software(e) => e.encode(p),
            #[cfg(feature = "nvenc")]
            AnyEncoder::Nvenc { enc, keyframe_next } => {
                if p.format != crate::picture::PixelFormat::I420 {
                    return Err(CodecError::Format(p.format));
                }
                let f = enc
                    .encode(&p.data, std::mem::take(keyframe_next))
                    .map_err(|e| CodecError::Encode(e.to_string()))?;
                Ok(Encoded {
                    data: f.data,
                    keyframe: f.keyframe,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::Decoder;
    use crate::pattern;

    /// 320x240@15, a keyframe a second.
    fn small() -> EncoderSettings {
        EncoderSettings {
            width: 320,
            height: 240,
            fps: 15,
            bitrate_bps: None,
            gop: 15,
        }
    }

    #[test]
    fn choices_parse() {
        assert_eq!("auto".parse(), Ok(EncoderChoice::Auto));
        assert_eq!("nvenc".parse(), Ok(EncoderChoice::Nvenc));
        assert!("x264".parse::<EncoderChoice>().is_err());
    }

    #[test]
    fn auto_encodes_here_and_says_why_nvenc_was_not_used() {
        let settings = small();
        let mut why = None;
        let mut enc = AnyEncoder::open(EncoderChoice::Auto, settings, &mut why).expect("encoder");
        if matches!(enc, AnyEncoder::Software(_)) {
            let why = why.expect("a reason for not using NVENC");
            assert!(why.contains("NVENC"), "{why}");
        }
        let mut dec = Decoder::new().expect("decoder");
        let out = enc.encode(&pattern::render(320, 240, 7)).expect("encode");
        assert!(out.keyframe);
        let p = dec.decode(&out.data).expect("decode").expect("a picture");
        assert_eq!(pattern::read(p.y_plane(), 320, 240), Some(7));
    }

    #[test]
    fn nvenc_alone_fails_clearly_without_a_gpu() {
        let settings = small();
        match AnyEncoder::open(EncoderChoice::Nvenc, settings, &mut None) {
            Err(e) => assert!(e.to_string().contains("NVENC"), "{e}"),
            Ok(e) => assert_eq!(e.describe(), "NVENC"),
        }
    }
}
