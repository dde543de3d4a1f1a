//! A hostile XoQ server for the tests: it speaks the wire protocol like `xoq-server` but
//! announces catalogs a compromised robot might send, to prove the mounter (which may run as
//! root) refuses them and creates nothing.
//!
//!     hostile_server --listen 127.0.0.1:PORT SCENARIO
//!
//! Prints `ticket: ...` like `xoq-server`. Scenarios:
//! - `server-name-traversal`: the server calls itself `../../etc/udev/rules.d/99`;
//! - `device-name-traversal`: a camera named `../../../tmp/xoq-pwned`;
//! - `device-name-option`: a serial port named `-rf`;
//! - `too-many-devices`: a catalog of 65 serial ports (the limit is 64);
//! - `duplicate-names`: two serial ports both named `ttyS0`;
//! - `huge-camera`: a camera of 65534x65534 pixels at 0 frames a second, which a mounter
//!   trusting it would size buffers by;
//! - `contradictory-audio`: an Opus microphone whose packets are 7 frames long, a length Opus
//!   cannot code;
//! - `old-version`: a valid catalog under protocol version 1, which the mounter did not offer;
//! - `growing-catalog`: a valid catalog of 20 new serial ports on every connection, each
//!   connection closed after a moment, so the mounter reconnects and is offered more.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xoq_link::{bind_endpoint, EndpointOptions, MessageReader, MessageWriter, Ticket};
use xoq_wire::{
    Access, AudioDirection, AudioFormat, AudioSettings, CameraSettings, DeviceInfo, DeviceKind,
    DeviceSettings, LineSettings, Message, ModemStatus, SampleFormat, VideoCodec, VideoMode,
    Welcome, ALPN, MAX_VERSION,
};

/// Devices offered per connection in `growing-catalog`.
const GROWTH: usize = 20;

fn serial(name: &str) -> DeviceInfo {
    DeviceInfo {
        name: name.into(),
        kind: DeviceKind::Serial,
        access: Access::ReadWrite,
        capabilities: 0,
        settings: DeviceSettings::Serial {
            line: LineSettings::default(),
            modem: ModemStatus::default(),
        },
    }
}

fn camera(name: &str, mode: VideoMode) -> DeviceInfo {
    DeviceInfo {
        name: name.into(),
        kind: DeviceKind::Camera,
        access: Access::ReadOnly,
        capabilities: 0,
        settings: DeviceSettings::Camera(CameraSettings {
            codec: VideoCodec::H264,
            mode,
            modes: vec![mode],
        }),
    }
}

fn small_mode() -> VideoMode {
    VideoMode {
        width: 64,
        height: 48,
        fps: 10,
    }
}

fn opus_microphone(name: &str, packet_frames: u16) -> DeviceInfo {
    DeviceInfo {
        name: name.into(),
        kind: DeviceKind::Audio,
        access: Access::ReadOnly,
        capabilities: 0,
        settings: DeviceSettings::Audio(AudioSettings {
            direction: AudioDirection::Capture,
            format: AudioFormat {
                rate: 48_000,
                channels: 1,
                sample: SampleFormat::Opus,
            },
            packet_frames,
        }),
    }
}

/// The framed `Welcome` for connection number `n` (from 0). The encoder writes whatever names
/// it is given (it trusts its caller, the server's validated config); only the device count
/// is capped, so `too-many-devices` patches it in by hand.
fn welcome(scenario: &str, n: usize) -> Result<Vec<u8>> {
    let mut version = MAX_VERSION;
    let (server_name, devices) = match scenario {
        "server-name-traversal" => ("../../etc/udev/rules.d/99", vec![serial("ttyS0")]),
        "device-name-traversal" => ("evil", vec![camera("../../../tmp/xoq-pwned", small_mode())]),
        "huge-camera" => {
            let huge = VideoMode {
                width: 65534,
                height: 65534,
                fps: 0,
            };
            ("evil", vec![camera("cam0", huge)])
        }
        "contradictory-audio" => ("evil", vec![opus_microphone("mic0", 7)]),
        "old-version" => {
            version = 1;
            ("evil", vec![serial("ttyS0")])
        }
        "device-name-option" => ("evil", vec![serial("-rf")]),
        "duplicate-names" => ("evil", vec![serial("ttyS0"), serial("ttyS0")]),
        "growing-catalog" => (
            "evil",
            (n * GROWTH..(n + 1) * GROWTH)
                .map(|i| serial(&format!("s{i}")))
                .collect(),
        ),
        "too-many-devices" => {
            let one = xoq_wire::limits::MAX_DEVICES + 1;
            let mut entry = Vec::new();
            Message::Welcome(Welcome {
                version: MAX_VERSION,
                server_name: "evil".into(),
                devices: vec![serial("s")],
            })
            .encode(&mut entry);
            // header (5) + version (2) + name (2 + 4) + count (2), then the one entry
            let ty = entry[0];
            let entry = entry.split_off(5 + 2 + 2 + 4 + 2);
            let mut body = vec![0, 1, 0, 4];
            body.extend_from_slice(b"evil");
            body.extend_from_slice(&(one as u16).to_be_bytes());
            for _ in 0..one {
                body.extend_from_slice(&entry);
            }
            let mut out = vec![ty];
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(&body);
            return Ok(out);
        }
        other => bail!("unknown scenario {other}"),
    };
    let mut out = Vec::new();
    Message::Welcome(Welcome {
        version,
        server_name: server_name.into(),
        devices,
    })
    .encode(&mut out);
    Ok(out)
}

async fn serve_one(conn: iroh::endpoint::Connection, scenario: &str, n: usize) -> Result<()> {
    let (send, recv) = conn.accept_bi().await?;
    let mut reader = MessageReader::new(recv, xoq_wire::Peer::Client);
    let mut writer = MessageWriter::new(send);
    match reader.next().await? {
        Some(Message::Hello(_)) => {}
        other => bail!("expected Hello, got {other:?}"),
    }
    writer.send_raw(&welcome(scenario, n)?).await?;
    // Long enough for the mounter to decode and act on the catalog; then, for the growing
    // catalog, hang up so it reconnects and is offered more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.close(0u32.into(), b"bye");
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, scenario) = match args.as_slice() {
        [_, flag, addr, scenario] if flag == "--listen" => (
            addr.parse::<SocketAddr>().context("listen address")?,
            scenario.clone(),
        ),
        _ => bail!("usage: hostile_server --listen ADDR SCENARIO"),
    };
    welcome(&scenario, 0)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let key = iroh::SecretKey::generate();
        let id = key.public();
        let ep = bind_endpoint(
            key,
            EndpointOptions {
                bind: vec![listen],
                alpns: vec![ALPN.to_vec()],
                ..Default::default()
            },
        )
        .await?;
        println!(
            "ticket: {}",
            Ticket {
                id,
                addrs: vec![listen],
                relays: vec![],
            }
        );
        let count = Arc::new(AtomicUsize::new(0));
        while let Some(incoming) = ep.accept().await {
            let scenario = scenario.clone();
            let n = count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                match incoming.await {
                    Ok(conn) => {
                        if let Err(e) = serve_one(conn, &scenario, n).await {
                            eprintln!("connection {n}: {e:#}");
                        }
                    }
                    Err(e) => eprintln!("connection {n} failed: {e}"),
                }
            });
        }
        Ok(())
    })
}
