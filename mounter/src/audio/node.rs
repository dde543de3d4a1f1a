//! One PipeWire node for a remote audio device, on a thread of its own that owns every
//! PipeWire object (they are not `Send`).
//!
//! The node is a `pw_stream` whose `media.class` is `Audio/Source` (a remote microphone) or
//! `Audio/Sink` (a remote speaker) and that does not connect itself anywhere: the session
//! manager lists it as a device that programs record from or play to. The stream offers one
//! fixed format, F32 at the remote device's rate and channel count; PipeWire converts for each
//! program. The process callback runs on PipeWire's real-time data thread and takes no lock
//! the bridge holds: the source owns its player (`xoq_audio::playout`), whose jitter buffer the
//! bridge feeds through a lock-free queue; the sink pushes into a lock-free queue that the
//! bridge drains.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use pipewire as pw;
use pw::properties::properties;
use pw::spa;
use xoq_audio::{Playout, PlayoutFeed};
use xoq_link::clock::monotonic_us;
use xoq_wire::{AudioDirection, AudioFormat};

use super::sink_queue::SinkQueue;

/// What the node is and where its samples go.
pub struct NodeSpec {
    /// `xoq.<server>.<device>`.
    pub name: String,
    /// "XoQ <server> <device>".
    pub description: String,
    pub direction: AudioDirection,
    pub format: AudioFormat,
    /// Frames per graph cycle asked for (PipeWire may round it to a power of two).
    pub quantum: u32,
}

/// Where the node's samples come from or go.
pub enum NodeIo {
    /// A source plays what its player gives; the feed hears when nobody listens any more.
    Source(Box<Playout>, PlayoutFeed),
    /// A sink hands what programs play to the bridge.
    Sink(Arc<SinkQueue>),
}

enum Command {
    Quit,
}

/// The node's thread; the node disappears from the graph when this is dropped.
pub struct Node {
    quit: pw::channel::Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Connects to the PipeWire daemon of this user (or `PIPEWIRE_RUNTIME_DIR`) and creates the
    /// node; fails with the reason when the daemon cannot be reached.
    pub fn spawn(spec: NodeSpec, io: NodeIo) -> Result<Node> {
        let (quit, quit_rx) = pw::channel::channel::<Command>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let name = spec.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pw {name}"))
            .spawn(move || {
                if let Err(e) = run(spec, io, quit_rx, &ready_tx) {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                }
            })
            .context("cannot start the PipeWire thread")?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Node {
                quit,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(anyhow!("cannot create PipeWire node {name}: {e}")),
            Err(_) => Err(anyhow!(
                "cannot create PipeWire node {name}: no answer from PipeWire within 10 s"
            )),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.quit.send(Command::Quit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The one format the node offers.
fn format_pod(format: &AudioFormat) -> Result<Vec<u8>> {
    let mut info = spa::param::audio::AudioInfoRaw::new();
    info.set_format(spa::param::audio::AudioFormat::F32LE);
    info.set_rate(format.rate);
    info.set_channels(u32::from(format.channels));
    let mut pos = [0u32; spa::param::audio::MAX_CHANNELS];
    match format.channels {
        1 => pos[0] = spa::sys::SPA_AUDIO_CHANNEL_MONO,
        2 => {
            pos[0] = spa::sys::SPA_AUDIO_CHANNEL_FL;
            pos[1] = spa::sys::SPA_AUDIO_CHANNEL_FR;
        }
        n => {
            for (i, p) in pos.iter_mut().enumerate().take(usize::from(n)) {
                *p = spa::sys::SPA_AUDIO_CHANNEL_AUX0 + i as u32;
            }
        }
    }
    info.set_position(pos);
    let obj = pw::spa::pod::Value::Object(pw::spa::pod::Object {
        type_: spa::utils::SpaTypes::ObjectParamFormat.as_raw(),
        id: spa::param::ParamType::EnumFormat.as_raw(),
        properties: info.into(),
    });
    let (cursor, _) =
        spa::pod::serialize::PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &obj)
            .map_err(|e| anyhow!("cannot describe the audio format: {e:?}"))?;
    Ok(cursor.into_inner())
}

fn run(
    spec: NodeSpec,
    io: NodeIo,
    quit_rx: pw::channel::Receiver<Command>,
    ready: &std::sync::mpsc::SyncSender<Result<(), String>>,
) -> Result<()> {
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).context("PipeWire main loop")?;
    // PipeWire's configuration for audio clients (as pw-cat uses): it loads the real-time
    // module, so the node's data thread is scheduled real-time (through RTKit, or directly where
    // the user may), and a busy desktop does not starve the jitter buffer's reader.
    let context = pw::context::ContextRc::new(
        &mainloop,
        Some(properties! { *pw::keys::CONFIG_NAME => "client-rt.conf" }),
    )
    .context("PipeWire context")?;
    let core = context.connect_rc(None).context(
        "cannot connect to the PipeWire daemon (is PipeWire running for this user? xoq-mount \
         must run in the desktop user's session, or with PIPEWIRE_RUNTIME_DIR set)",
    )?;
    let (class, category) = match spec.direction {
        AudioDirection::Capture => ("Audio/Source", "Capture"),
        AudioDirection::Playback => ("Audio/Sink", "Playback"),
    };
    let latency = format!("{}/{}", spec.quantum, spec.format.rate);
    let rate = format!("1/{}", spec.format.rate);
    let stream = pw::stream::StreamRc::new(
        core.clone(),
        &spec.name,
        properties! {
            *pw::keys::MEDIA_TYPE => "Audio",
            *pw::keys::MEDIA_CATEGORY => category,
            *pw::keys::MEDIA_ROLE => "Communication",
            *pw::keys::MEDIA_CLASS => class,
            *pw::keys::NODE_NAME => spec.name.as_str(),
            *pw::keys::NODE_DESCRIPTION => spec.description.as_str(),
            *pw::keys::NODE_LATENCY => latency.as_str(),
            "node.rate" => rate.as_str(),
            // Below real sound cards: a remote device never becomes the default by itself.
            "priority.session" => "1",
        },
    )
    .context("PipeWire stream")?;
    let channels = usize::from(spec.format.channels);
    let stride = 4 * channels;
    let mut scratch: Vec<f32> = Vec::new();
    let (mut player, feed, sink) = match io {
        NodeIo::Source(player, feed) => (Some(player), Some(feed), None),
        NodeIo::Sink(queue) => (None, None, Some(queue)),
    };
    let _listener = stream
        .add_local_listener_with_user_data(())
        .state_changed({
            let name = spec.name.clone();
            move |_, _, old, new| {
                tracing::debug!(node = %name, "PipeWire stream {old:?} -> {new:?}");
                // Nobody records any more: the next recording starts fresh, at the target delay.
                if let (Some(feed), false) =
                    (&feed, matches!(new, pw::stream::StreamState::Streaming))
                {
                    feed.stop();
                }
            }
        })
        .process(move |stream, _| {
            let Some(mut buf) = stream.dequeue_buffer() else {
                return;
            };
            let requested = buf.requested() as usize;
            let Some(d) = buf.datas_mut().first_mut() else {
                return;
            };
            if let Some(player) = player.as_mut() {
                let frames = {
                    let Some(bytes) = d.data() else {
                        return;
                    };
                    let max = bytes.len() / stride;
                    let frames = if requested > 0 {
                        requested.min(max)
                    } else {
                        max
                    };
                    scratch.resize(frames * channels, 0.0);
                    player.pull(&mut scratch, monotonic_us());
                    for (b, s) in bytes.chunks_exact_mut(4).zip(&scratch) {
                        b.copy_from_slice(&s.to_le_bytes());
                    }
                    frames
                };
                let chunk = d.chunk_mut();
                *chunk.offset_mut() = 0;
                *chunk.stride_mut() = stride as i32;
                *chunk.size_mut() = (frames * stride) as u32;
            } else if let Some(queue) = &sink {
                let (offset, size) = (d.chunk().offset() as usize, d.chunk().size() as usize);
                if let Some(bytes) = d.data() {
                    let end = (offset + size).min(bytes.len());
                    queue.push_le_bytes(&bytes[offset.min(end)..end]);
                }
            }
        })
        .register()
        .context("PipeWire stream listener")?;
    let pod = format_pod(&spec.format)?;
    let mut params = [spa::pod::Pod::from_bytes(&pod).ok_or_else(|| anyhow!("bad format pod"))?];
    let direction = match spec.direction {
        AudioDirection::Capture => spa::utils::Direction::Output,
        AudioDirection::Playback => spa::utils::Direction::Input,
    };
    // No AUTOCONNECT: programs connect to us.
    let flags = pw::stream::StreamFlags::MAP_BUFFERS | pw::stream::StreamFlags::RT_PROCESS;
    stream
        .connect(direction, None, flags, &mut params)
        .context("cannot connect the PipeWire stream")?;
    let _quit = quit_rx.attach(mainloop.loop_(), {
        let ml = mainloop.clone();
        move |Command::Quit| ml.quit()
    });
    let _ = ready.send(Ok(()));
    mainloop.run();
    let _ = stream.disconnect();
    Ok(())
}
