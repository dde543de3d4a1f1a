//! A PipeWire client stream for the benchmarks: records from, or plays to, one node, calling
//! back with each buffer and the wall-clock time it was handed over. Runs on a thread of its
//! own (PipeWire objects are not `Send`); the stream goes away when the handle is dropped.

use std::time::Duration;

use pipewire as pw;
use pw::properties::properties;
use pw::spa;

/// Called with interleaved mono samples and the wall-clock time (µs since the epoch) of the
/// callback: for a capture, when the samples were handed over; for a playback, when the
/// buffer is taken (frame i plays i / rate later).
pub type Callback = Box<dyn FnMut(&mut [f32], u64) + Send>;

pub enum Direction {
    Capture,
    Playback,
}

pub struct ClientStream {
    quit: pw::channel::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClientStream {
    /// A mono F32 stream at `rate` connected to the node named `target`. `monitor`: capture
    /// what is played to a sink. The PipeWire daemon is the one the process environment names
    /// (PIPEWIRE_RUNTIME_DIR).
    pub fn start(
        target: &str,
        direction: Direction,
        rate: u32,
        quantum: u32,
        monitor: bool,
        callback: Callback,
    ) -> ClientStream {
        let (quit, quit_rx) = pw::channel::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let target = target.to_string();
        let thread = std::thread::spawn(move || {
            run(
                &target, direction, rate, quantum, monitor, callback, quit_rx, ready_tx,
            )
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the benchmark's PipeWire stream did not start");
        ClientStream {
            quit,
            thread: Some(thread),
        }
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        let _ = self.quit.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    target: &str,
    direction: Direction,
    rate: u32,
    quantum: u32,
    monitor: bool,
    mut callback: Callback,
    quit_rx: pw::channel::Receiver<()>,
    ready: std::sync::mpsc::SyncSender<()>,
) {
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).expect("main loop");
    let context = pw::context::ContextRc::new(&mainloop, None).expect("context");
    let core = context.connect_rc(None).expect("connect to PipeWire");
    let latency = format!("{quantum}/{rate}");
    let capture_sink = if monitor { "true" } else { "false" };
    let stream = pw::stream::StreamRc::new(
        core,
        "xoq-bench",
        properties! {
            *pw::keys::MEDIA_TYPE => "Audio",
            *pw::keys::MEDIA_CATEGORY => match direction { Direction::Capture => "Capture", Direction::Playback => "Playback" },
            *pw::keys::MEDIA_ROLE => "Communication",
            *pw::keys::NODE_LATENCY => latency.as_str(),
            "target.object" => target,
            "stream.capture.sink" => capture_sink,
        },
    )
    .expect("stream");
    let mut scratch: Vec<f32> = Vec::new();
    let is_capture = matches!(direction, Direction::Capture);
    let _listener = stream
        .add_local_listener_with_user_data(())
        .process(move |stream, _| {
            let now = xoq_link::clock::unix_now_us();
            let Some(mut buf) = stream.dequeue_buffer() else {
                return;
            };
            let requested = buf.requested() as usize;
            let Some(d) = buf.datas_mut().first_mut() else {
                return;
            };
            if is_capture {
                let (offset, size) = (d.chunk().offset() as usize, d.chunk().size() as usize);
                if let Some(bytes) = d.data() {
                    let end = (offset + size).min(bytes.len());
                    scratch.clear();
                    scratch.extend(
                        bytes[offset.min(end)..end]
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                    callback(&mut scratch, now);
                }
            } else {
                let frames = {
                    let Some(bytes) = d.data() else {
                        return;
                    };
                    let max = bytes.len() / 4;
                    let n = if requested > 0 {
                        requested.min(max)
                    } else {
                        max
                    };
                    scratch.clear();
                    scratch.resize(n, 0.0);
                    callback(&mut scratch, now);
                    for (b, s) in bytes.chunks_exact_mut(4).zip(&scratch) {
                        b.copy_from_slice(&s.to_le_bytes());
                    }
                    n
                };
                let chunk = d.chunk_mut();
                *chunk.offset_mut() = 0;
                *chunk.stride_mut() = 4;
                *chunk.size_mut() = (frames * 4) as u32;
            }
        })
        .register()
        .expect("listener");
    let mut info = spa::param::audio::AudioInfoRaw::new();
    info.set_format(spa::param::audio::AudioFormat::F32LE);
    info.set_rate(rate);
    info.set_channels(1);
    let mut pos = [0u32; spa::param::audio::MAX_CHANNELS];
    pos[0] = spa::sys::SPA_AUDIO_CHANNEL_MONO;
    info.set_position(pos);
    let obj = pw::spa::pod::Value::Object(pw::spa::pod::Object {
        type_: spa::utils::SpaTypes::ObjectParamFormat.as_raw(),
        id: spa::param::ParamType::EnumFormat.as_raw(),
        properties: info.into(),
    });
    let (cursor, _) =
        spa::pod::serialize::PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &obj)
            .expect("format pod");
    let bytes = cursor.into_inner();
    let mut params = [spa::pod::Pod::from_bytes(&bytes).expect("pod")];
    let dir = if is_capture {
        spa::utils::Direction::Input
    } else {
        spa::utils::Direction::Output
    };
    stream
        .connect(
            dir,
            None,
            pw::stream::StreamFlags::AUTOCONNECT
                | pw::stream::StreamFlags::MAP_BUFFERS
                | pw::stream::StreamFlags::RT_PROCESS,
            &mut params,
        )
        .expect("connect the stream");
    let _quit = quit_rx.attach(mainloop.loop_(), {
        let ml = mainloop.clone();
        move |()| ml.quit()
    });
    let _ = ready.send(());
    mainloop.run();
    let _ = stream.disconnect();
}
