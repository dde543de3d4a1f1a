//! Hardware H.264 through NVIDIA NVENC (shiguredo_nvcodec; cargo feature `nvenc`), set up like
//! the software encoder in `h264.rs`: live video, no B-frames (P-frames only), a keyframe every `gop` frames or never
//! (infinite GOP), an IDR on request, SPS/PPS before every IDR, one Annex B access unit out per
//! picture in.
//!
//! Nothing NVIDIA is linked: the crate opens libcuda.so.1, libnvcuvid.so.1 and
//! libnvidia-encode.so.1 at run time, so on a machine without the driver or without a GPU
//! [`NvencEncoder::new`] returns [`NvencError::Unavailable`] (it never panics).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::Duration;

use shiguredo_nvcodec as nv;
use thiserror::Error;

/// How long one picture may take on the GPU before `encode` gives up (NVENC takes ~1-5 ms).
const ENCODE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Error)]
pub enum NvencError {
    /// No NVIDIA driver (libcuda.so.1 / libnvcuvid.so.1 / libnvidia-encode.so.1), cuInit failed,
    /// or no CUDA device: fall back to software.
    #[error("NVENC unavailable: {0}")]
    Unavailable(String),
    /// The driver is there but refused the session or the settings (too old a driver for the
    /// SDK 13 API, out of NVENC sessions, unsupported size...).
    #[error("NVENC encoder setup: {0}")]
    Init(String),
    #[error("NVENC encode: {0}")]
    Encode(String),
    #[error("bad settings: {0}")]
    Settings(String),
    #[error("picture is {got} bytes, expected {expected} ({format:?} {width}x{height})")]
    FrameSize {
        got: usize,
        expected: usize,
        format: InputFormat,
        width: u32,
        height: u32,
    },
}

/// Layout of the pictures given to [`NvencEncoder::encode`]; NVENC takes both as they are
/// (no conversion on the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Planar Y, U, V (NVENC's IYUV): what `xoq_video::Picture` I420 holds.
    I420,
    /// Y plane then interleaved UV: the GPU's native input.
    Nv12,
}

/// Encoder settings (the same fields as `h264::EncoderSettings`, plus the input layout).
#[derive(Debug, Clone, Copy)]
pub struct NvencSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u16,
    /// Target bit rate; `None` picks 0.1 bit per pixel per frame, as the software encoder does.
    pub bitrate_bps: Option<u32>,
    /// Frames between keyframes; `None` for an infinite GOP (keyframes only on request).
    pub gop: Option<u32>,
    pub input: InputFormat,
    /// CUDA device ordinal.
    pub device: i32,
}

impl NvencSettings {
    fn bitrate(&self) -> u32 {
        self.bitrate_bps.unwrap_or_else(|| {
            let bits = f64::from(self.width) * f64::from(self.height) * f64::from(self.fps) * 0.1;
            bits.clamp(100_000.0, 50_000_000.0) as u32
        })
    }

    fn frame_len(&self) -> usize {
        let (w, h) = (self.width as usize, self.height as usize);
        w * h + 2 * (w / 2) * (h / 2)
    }
}

/// One encoded picture (as `h264::Encoded`).
#[derive(Debug, Clone)]
pub struct NvencFrame {
    /// Annex B NAL units, with SPS/PPS before every IDR.
    pub data: Vec<u8>,
    pub keyframe: bool,
}

type Output = Result<nv::EncodedFrame<u64>, nv::Error>;

/// A live H.264 encoder on the GPU.
pub struct NvencEncoder {
    // Declared first so it drops (flushing and joining its threads) before the receiver.
    inner: nv::Encoder<nv::FnEncodeHandler<u64>>,
    out: Receiver<Output>,
    /// SPS + PPS (Annex B), put before any IDR that NVENC sent without them.
    sps_pps: Vec<u8>,
    next: u64,
    settings: NvencSettings,
}

impl NvencEncoder {
    /// Same arguments as the software path: size, frame rate and bit rate, with a 1-second GOP
    /// and I420 input.
    pub fn new(width: u32, height: u32, fps: u16, bitrate_bps: u32) -> Result<Self, NvencError> {
        Self::with_settings(NvencSettings {
            width,
            height,
            fps,
            bitrate_bps: Some(bitrate_bps),
            gop: Some(u32::from(fps.max(1))),
            input: InputFormat::I420,
            device: 0,
        })
    }

    pub fn with_settings(settings: NvencSettings) -> Result<Self, NvencError> {
        let s = settings;
        if s.width == 0
            || s.height == 0
            || !s.width.is_multiple_of(2)
            || !s.height.is_multiple_of(2)
        {
            return Err(NvencError::Settings(format!(
                "size {}x{} must be even and non-zero",
                s.width, s.height
            )));
        }
        if s.fps == 0 || s.gop == Some(0) {
            return Err(NvencError::Settings("fps and gop must be non-zero".into()));
        }

        // Is there a driver and a device at all? This is where a machine without NVIDIA fails.
        preflight()?;
        let devices = nv::device_count().map_err(|e| NvencError::Unavailable(e.to_string()))?;
        if devices <= s.device {
            return Err(NvencError::Unavailable(format!(
                "CUDA device {} requested, {devices} present",
                s.device
            )));
        }

        let config = nv::EncoderConfig {
            codec: nv::CodecConfig::H264(nv::H264EncoderConfig {
                // Main (the crate's default); with frame_interval_p = 1 there are no B-frames.
                profile: Some(nv::H264Profile::Main),
                // IDR (not just I) at every GOP boundary, so a late joiner can start there.
                idr_period: s.gop,
            }),
            width: s.width,
            height: s.height,
            max_encode_width: None,
            max_encode_height: None,
            framerate_num: u32::from(s.fps),
            framerate_den: 1,
            average_bitrate: Some(s.bitrate()),
            // P1 = fastest; with ULTRA_LOW_LATENCY tuning: no look-ahead, no B-frames, one frame
            // in, one frame out.
            preset: nv::Preset::P1,
            tuning_info: nv::TuningInfo::ULTRA_LOW_LATENCY,
            rate_control_mode: nv::RateControlMode::Cbr,
            // None = NVENC_INFINITE_GOPLENGTH.
            gop_length: s.gop,
            // 1 = IPPP...: no B-frames, no reordering.
            frame_interval_p: 1,
            buffer_format: match s.input {
                InputFormat::I420 => nv::BufferFormat::Iyuv,
                InputFormat::Nv12 => nv::BufferFormat::Nv12,
            },
            device_id: s.device,
        };

        let (tx, out) = mpsc::channel::<Output>();
        let handler = nv::FnEncodeHandler::new(move |r: Output| {
            // The receiver is gone only while the encoder is being dropped.
            let _ = tx.send(r);
        });
        let inner =
            nv::Encoder::new(config, handler).map_err(|e| NvencError::Init(e.to_string()))?;
        let sps_pps = inner
            .get_sequence_params()
            .map_err(|e| NvencError::Init(e.to_string()))?;

        Ok(NvencEncoder {
            inner,
            out,
            sps_pps,
            next: 0,
            settings,
        })
    }

    pub fn settings(&self) -> NvencSettings {
        self.settings
    }

    /// Encodes one picture of the configured size and layout; `force_keyframe` makes it an IDR
    /// (with SPS/PPS). Blocks until NVENC has produced it.
    pub fn encode(&mut self, frame: &[u8], force_keyframe: bool) -> Result<NvencFrame, NvencError> {
        let expected = self.settings.frame_len();
        if frame.len() != expected {
            return Err(NvencError::FrameSize {
                got: frame.len(),
                expected,
                format: self.settings.input,
                width: self.settings.width,
                height: self.settings.height,
            });
        }
        let id = self.next;
        self.next += 1;
        let options = nv::EncodeOptions {
            force_intra: false,
            force_idr: force_keyframe,
            // Ask for SPS/PPS on the IDRs we know of; periodic IDRs are covered below.
            output_spspps: force_keyframe || id == 0,
        };
        self.inner
            .encode(frame, &options, id)
            .map_err(|e| NvencError::Encode(e.to_string()))?;

        // One picture in, one out (no B-frames, no look-ahead). Skip outputs of earlier
        // pictures that timed out.
        let encoded = loop {
            match self.out.recv_timeout(ENCODE_TIMEOUT) {
                Ok(Ok(f)) if *f.user_data() < id => continue,
                Ok(Ok(f)) => break f,
                Ok(Err(e)) => return Err(NvencError::Encode(e.to_string())),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(NvencError::Encode(format!(
                        "picture {id} not out after {ENCODE_TIMEOUT:?}"
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(NvencError::Encode("encoder thread has stopped".into()))
                }
            }
        };

        let keyframe = matches!(
            encoded.picture_type(),
            nv::PictureType::Idr | nv::PictureType::I
        );
        let (mut data, _) = encoded.into_parts();
        if encoded_is_idr_without_sps(keyframe, &data) {
            let mut with = Vec::with_capacity(self.sps_pps.len() + data.len());
            with.extend_from_slice(&self.sps_pps);
            with.extend_from_slice(&data);
            data = with;
        }
        Ok(NvencFrame { data, keyframe })
    }
}

/// Opens libcuda.so.1 and runs cuInit ourselves before the crate does, once per process.
///
/// shiguredo_nvcodec 2026.2.0 (and 2026.3.0-canary.0) deadlocks when libcuda.so.1 loads but
/// cuInit fails (driver libraries present, no usable GPU: CUDA_ERROR_NO_DEVICE, a driver/kernel
/// module mismatch...): its error path re-enters the `LazyLock` that is still initialising
/// (`CudaLibrary::load` -> `Error::check_cuda` -> `Error::new_cuda` -> `CudaLibrary::load`).
/// Calling into the crate only after cuInit has succeeded here avoids that path.
fn preflight() -> Result<(), NvencError> {
    static CHECKED: OnceLock<Result<libloading::Library, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            // SAFETY: libcuda.so.1 is the NVIDIA driver library the crate loads too; its
            // initialisers have no preconditions.
            let lib =
                unsafe { libloading::Library::new("libcuda.so.1") }.map_err(|e| e.to_string())?;
            // SAFETY: the CUDA driver API's signatures: CUresult cuInit(unsigned int) and
            // CUresult cuGetErrorName(CUresult, const char **).
            unsafe {
                let cu_init = lib
                    .get::<unsafe extern "C" fn(u32) -> u32>(b"cuInit\0")
                    .map_err(|e| e.to_string())?;
                let status = cu_init(0);
                if status != 0 {
                    let mut name: *const std::ffi::c_char = std::ptr::null();
                    if let Ok(get_name) = lib
                        .get::<unsafe extern "C" fn(u32, *mut *const std::ffi::c_char) -> u32>(
                            b"cuGetErrorName\0",
                        )
                    {
                        get_name(status, &mut name);
                    }
                    let name = if name.is_null() {
                        "unknown CUDA error".to_string()
                    } else {
                        std::ffi::CStr::from_ptr(name)
                            .to_string_lossy()
                            .into_owned()
                    };
                    return Err(format!("cuInit failed: {name} ({status})"));
                }
            }
            // Kept loaded for the life of the process, as the crate keeps its own handle.
            Ok(lib)
        })
        .as_ref()
        .map(|_| ())
        .map_err(|e| NvencError::Unavailable(e.clone()))
}

fn encoded_is_idr_without_sps(keyframe: bool, au: &[u8]) -> bool {
    keyframe && !nal_types(au).any(|t| t == 7)
}

/// The nal_unit_type of each NAL unit in an Annex B stream.
fn nal_types(au: &[u8]) -> impl Iterator<Item = u8> + '_ {
    au.windows(4).filter_map(|w| match w {
        [0, 0, 1, h] => Some(h & 0x1f),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nal_types_and_missing_sps() {
        let idr_only = [0, 0, 0, 1, 0x65, 0xaa, 0, 0, 1, 0x65, 0xbb];
        assert_eq!(nal_types(&idr_only).collect::<Vec<_>>(), vec![5, 5]);
        assert!(encoded_is_idr_without_sps(true, &idr_only));
        let with_sps = [0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 3];
        assert_eq!(nal_types(&with_sps).collect::<Vec<_>>(), vec![7, 8, 5]);
        assert!(!encoded_is_idr_without_sps(true, &with_sps));
        assert!(!encoded_is_idr_without_sps(false, &idr_only));
    }

    #[test]
    fn encoder_can_move_to_the_camera_thread() {
        fn is_send<T: Send>() {}
        is_send::<NvencEncoder>();
    }

    #[test]
    fn frame_len_is_420() {
        let s = NvencSettings {
            width: 640,
            height: 480,
            fps: 30,
            bitrate_bps: None,
            gop: None,
            input: InputFormat::Nv12,
            device: 0,
        };
        assert_eq!(s.frame_len(), 640 * 480 * 3 / 2);
        assert_eq!(s.bitrate(), 921_600);
    }

    /// Here (no NVIDIA driver) construction must fail cleanly; on a GPU machine it must work.
    #[test]
    fn new_fails_cleanly_or_encodes() {
        match NvencEncoder::new(640, 480, 30, 1_000_000) {
            Err(NvencError::Unavailable(msg)) => eprintln!("no NVENC here: {msg}"),
            Err(e) => panic!("unexpected error kind: {e}"),
            Ok(mut enc) => {
                let frame = vec![128u8; 640 * 480 * 3 / 2];
                for n in 0..40u32 {
                    let f = enc.encode(&frame, n == 35).unwrap();
                    assert_eq!(f.keyframe, n == 0 || n == 30 || n == 35, "frame {n}");
                    if f.keyframe {
                        assert!(nal_types(&f.data).any(|t| t == 7), "SPS before IDR {n}");
                    }
                }
            }
        }
    }
}
