//! A camera or a microphone on a relay in the format of the project's own players (`hang`, read
//! by `@moq/watch`): a `catalog.json` track describing one rendition, and the rendition's track
//! of frames (a microsecond timestamp, then the payload). A camera's rendition is H.264 (the
//! Annex B access unit with its SPS and PPS in every keyframe, `avc3`), a group per keyframe so
//! a late joiner starts on one; a microphone's is Opus, a group per packet. Both ends use this
//! module: the server to describe what it publishes, the mounter to read it back (checked: a
//! catalog is a peer's bytes).

use bytes::Bytes;
use hang::catalog::{AudioCodec, AudioConfig, Catalog, Container, VideoCodec, VideoConfig, H264};
use thiserror::Error;

/// The rendition's track name.
pub const VIDEO_TRACK: &str = "video";
/// A microphone's rendition's track name.
pub const AUDIO_TRACK: &str = "audio";
/// The catalog's track name (hang's).
pub const CATALOG_TRACK: &str = Catalog::DEFAULT_NAME;
/// The largest catalog read back, in bytes.
pub const MAX_CATALOG: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error("the camera's catalog: {0}")]
    Catalog(String),
    #[error("the camera's frame: {0}")]
    Frame(String),
}

/// Track properties of the catalog (hang's: sent before media).
pub fn catalog_track_info() -> moq_net::track::Info {
    Catalog::default_track_info()
}

/// Track properties of the rendition (microsecond timestamps, hang's video priority).
pub fn video_track_info() -> moq_net::track::Info {
    hang::container::track_info(hang::catalog::PRIORITY.video)
}

/// Track properties of a microphone's rendition (hang's audio priority, above video).
pub fn audio_track_info() -> moq_net::track::Info {
    hang::container::track_info(hang::catalog::PRIORITY.audio)
}

/// What a mounter needs of a camera's catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoRendition {
    pub track: String,
    pub width: u16,
    pub height: u16,
}

/// The `avc3` codec of an H.264 keyframe, from its SPS (profile, constraint flags, level).
pub fn h264_codec(access_unit: &[u8]) -> Option<H264> {
    let sps = nal_units(access_unit).find(|n| n.first().is_some_and(|h| h & 0x1f == 7))?;
    match sps {
        [_, profile, constraints, level, ..] => Some(H264 {
            inline: true,
            profile: *profile,
            constraints: *constraints,
            level: *level,
        }),
        _ => None,
    }
}

/// The NAL units of an Annex B stream (start codes of 3 or 4 bytes).
fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            let mut e = s - 3;
            // A 4-byte start code's leading zero belongs to it, not to the unit before.
            if e > 0 && data[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(s, e)| &data[s..e.max(s)])
}

/// The catalog of a camera publishing one H.264 rendition.
pub fn video_catalog(
    codec: H264,
    width: u16,
    height: u16,
    fps: u16,
    bitrate_bps: Option<u32>,
) -> Result<Vec<u8>, MediaError> {
    let mut config = VideoConfig::new(VideoCodec::H264(codec));
    config.coded_width = Some(width.into());
    config.coded_height = Some(height.into());
    config.framerate = Some(fps.into());
    config.bitrate = bitrate_bps.map(u64::from);
    config.optimize_for_latency = Some(true);
    config.container = Container::Legacy;
    encode_catalog(|c| c.video.insert(VIDEO_TRACK, config))
}

/// The catalog of a microphone publishing one Opus rendition of `packet_us` per packet.
pub fn audio_catalog(
    rate: u32,
    channels: u8,
    bitrate_bps: u32,
    packet_us: u64,
) -> Result<Vec<u8>, MediaError> {
    let mut config = AudioConfig::new(AudioCodec::Opus, rate, channels.into());
    config.bitrate = Some(bitrate_bps.into());
    config.container = Container::Legacy;
    // Each packet is flushed as soon as it is encoded: a packet's span at most.
    config.jitter = Some(std::time::Duration::from_micros(packet_us));
    encode_catalog(|c| c.audio.insert(AUDIO_TRACK, config))
}

/// A catalog with what `fill` puts in it, as JSON.
fn encode_catalog(
    fill: impl FnOnce(&mut Catalog) -> hang::Result<()>,
) -> Result<Vec<u8>, MediaError> {
    let mut catalog: Catalog = Catalog::default();
    fill(&mut catalog).map_err(|e| MediaError::Catalog(e.to_string()))?;
    catalog
        .to_vec()
        .map_err(|e| MediaError::Catalog(e.to_string()))
}

/// The rendition a mounter plays from a catalog: the best H.264 one in the legacy container,
/// with its size.
pub fn read_catalog(bytes: &[u8]) -> Result<VideoRendition, MediaError> {
    if bytes.len() > MAX_CATALOG {
        return Err(MediaError::Catalog(format!(
            "{} bytes, more than {MAX_CATALOG}",
            bytes.len()
        )));
    }
    let catalog: Catalog =
        Catalog::from_slice(bytes).map_err(|e| MediaError::Catalog(e.to_string()))?;
    catalog
        .check_renditions()
        .map_err(|e| MediaError::Catalog(e.to_string()))?;
    let (track, config) = catalog
        .video
        .ranked()
        .find(|(_, c)| {
            matches!(c.codec, VideoCodec::H264(_)) && matches!(c.container, Container::Legacy)
        })
        .ok_or_else(|| MediaError::Catalog("no H.264 rendition this mounter can play".into()))?;
    let size = |v: Option<u32>, what: &str| {
        v.and_then(|v| u16::try_from(v).ok())
            .filter(|v| (16..=8192).contains(v))
            .ok_or_else(|| MediaError::Catalog(format!("no usable {what}")))
    };
    if !xoq_wire::name::is_valid_name(track) {
        return Err(MediaError::Catalog(format!(
            "the rendition's track name `{track}` is not a valid name"
        )));
    }
    Ok(VideoRendition {
        track: track.clone(),
        width: size(config.coded_width, "width")?,
        height: size(config.coded_height, "height")?,
    })
}

/// One frame of the rendition's track: its timestamp (microseconds) and access unit.
pub fn encode_frame(timestamp_us: u64, access_unit: &[u8]) -> Result<Bytes, MediaError> {
    let frame = hang::container::Frame {
        timestamp: hang::container::Timestamp::from_micros(timestamp_us)
            .map_err(|e| MediaError::Frame(e.to_string()))?,
        payload: Bytes::copy_from_slice(access_unit),
    };
    let mut buf = bytes::BytesMut::with_capacity(access_unit.len() + 8);
    frame
        .encode(&mut buf)
        .map_err(|e| MediaError::Frame(e.to_string()))?;
    Ok(buf.freeze())
}

/// The timestamp (microseconds) and access unit of one frame of the rendition's track.
pub fn decode_frame(bytes: Bytes) -> Result<(u64, Bytes), MediaError> {
    let frame =
        hang::container::Frame::decode(bytes).map_err(|e| MediaError::Frame(e.to_string()))?;
    let ts = frame
        .timestamp
        .as_micros()
        .try_into()
        .map_err(|_| MediaError::Frame("timestamp out of range".into()))?;
    Ok((ts, frame.payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYFRAME: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, // SPS: baseline, level 3.1
        0, 0, 0, 1, 0x68, 0xce, // PPS
        0, 0, 1, 0x65, 0x88, 0x84, // IDR slice
    ];

    #[test]
    fn the_codec_comes_from_the_keyframes_sps() {
        let c = h264_codec(KEYFRAME).expect("sps");
        assert_eq!(c.to_string(), "avc3.42c01f");
        assert!(h264_codec(&[0, 0, 1, 0x65, 1, 2]).is_none());
        assert!(h264_codec(&[0, 0, 1, 0x67, 0x42]).is_none());
        assert!(h264_codec(&[]).is_none());
    }

    #[test]
    fn a_catalog_and_frames_read_back_as_written() {
        let codec = h264_codec(KEYFRAME).expect("sps");
        let c = video_catalog(codec, 640, 480, 30, Some(1_000_000)).expect("catalog");
        let json = String::from_utf8(c.clone()).expect("utf8");
        assert!(json.contains("avc3.42c01f"), "{json}");
        let r = read_catalog(&c).expect("read");
        assert_eq!(
            r,
            VideoRendition {
                track: VIDEO_TRACK.into(),
                width: 640,
                height: 480
            }
        );
        let f = encode_frame(1_733_000_000_123_456, KEYFRAME).expect("frame");
        let (ts, au) = decode_frame(f).expect("decode");
        assert_eq!(ts, 1_733_000_000_123_456);
        assert_eq!(&au[..], KEYFRAME);
    }

    #[test]
    fn an_audio_catalog_names_one_opus_rendition_for_the_players() {
        let c = audio_catalog(48_000, 1, 32_000, 20_000).expect("catalog");
        let catalog: Catalog = Catalog::from_slice(&c).expect("hang reads it");
        let (track, config) = catalog.audio.renditions.iter().next().expect("a rendition");
        assert_eq!(track, AUDIO_TRACK);
        assert_eq!(config.codec, AudioCodec::Opus);
        assert_eq!((config.sample_rate, config.channel_count), (48_000, 1));
        assert_eq!(config.container, Container::Legacy);
        let json = String::from_utf8(c).expect("utf8");
        assert!(json.contains("\"codec\":\"opus\""), "{json}");
        assert!(json.contains("\"numberOfChannels\":1"), "{json}");
    }

    #[test]
    fn hostile_catalogs_are_refused() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"video\":{\"renditions\":{}}}",
            b"{\"video\":{\"renditions\":{\"v\":{\"codec\":\"vp8\",\"codedWidth\":64,\"codedHeight\":64}}}}",
            b"{\"video\":{\"renditions\":{\"v\":{\"codec\":\"avc3.42c01f\",\"codedWidth\":0,\"codedHeight\":64}}}}",
            b"{\"video\":{\"renditions\":{\"../x\":{\"codec\":\"avc3.42c01f\",\"codedWidth\":64,\"codedHeight\":64}}}}",
        ] {
            assert!(read_catalog(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(read_catalog(&vec![b' '; MAX_CATALOG + 1]).is_err());
    }
}
