//! The serial device actor: owns one port, fans received bytes out to every attached client,
//! applies one writer's data and settings in order, and reopens the port if it vanishes.
//!
//! Policy: any number of read-only clients, at most one read-write client (a second read-write
//! open is refused with `Busy`). The read-write client is served losslessly: if it reads
//! slowly, the port is read slowly, exactly as a slow local program would. Read-only observers
//! never slow the port down: what they cannot take is dropped, counted, and reported to them
//! with an `Overrun` error. The writer hears soon after its writes how much of its data the port
//! took (`TxProgress`, counted per writer name across reconnections: [`super::writer`]).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use xoq_wire::{
    Access, DeviceInfo, DeviceKind, DeviceSettings, ErrorCode, LineSettings, Message, ModemStatus,
};
use xoq_wire::{FlushQueue, ModemLines};

use super::backend::{FlowSwitch, PortControl, PortReader, SerialBackend};
use super::writer::{Remembered, ReportDue, WriterName, WriterTally, REPORT_BYTES, REPORT_DELAY};

/// Bytes read from the port at once, and the largest chunk written at once.
const CHUNK: usize = 4096;
/// How often modem input lines are polled while the port is open.
const MODEM_POLL: Duration = Duration::from_millis(100);
/// Queued commands per device before a writing client waits.
const CMD_DEPTH: usize = 64;

use crate::session::Outbox;

/// What an attached client asks of the port.
#[derive(Debug)]
pub enum Op {
    Data(Vec<u8>),
    Line(LineSettings),
    Modem(ModemLines),
    Break(u16),
    SetBreak(bool),
    Flush(FlushQueue),
    Drain(u32),
    /// Answer with `TxProgress`: first on a read-write stream, after every earlier command.
    Progress,
}

struct Command {
    from: u64,
    op: Op,
    tally: WriterTally,
}

/// The read-write attachment of the port.
struct Writer {
    id: u64,
    since: std::time::Instant,
    name: Option<WriterName>,
    replaced: Arc<AtomicBool>,
}

struct Subscriber {
    id: u64,
    tx: Outbox,
    lossless: bool,
    dropped_bytes: u64,
}

struct State {
    line: LineSettings,
    modem: ModemStatus,
    writer: Option<Writer>,
    remembered: Remembered,
    /// The open port's `tcflow`.
    flow: Option<FlowSwitch>,
    subs: Vec<Subscriber>,
    gone: Option<String>,
}

/// One served serial port.
pub struct SerialDevice {
    pub name: String,
    capabilities: u32,
    state: Mutex<State>,
    cmd_tx: mpsc::Sender<Command>,
    next_id: AtomicU64,
}

impl SerialDevice {
    /// Starts the actor for `backend` and returns the shared device.
    pub fn spawn<B: SerialBackend>(name: String, backend: B, line: LineSettings) -> Arc<Self> {
        let (cmd_tx, cmd_rx) = mpsc::channel(CMD_DEPTH);
        let dev = Arc::new(SerialDevice {
            name,
            capabilities: backend.capabilities(),
            state: Mutex::new(State {
                line,
                modem: ModemStatus::default(),
                writer: None,
                remembered: Remembered::default(),
                flow: None,
                subs: Vec::new(),
                gone: Some("not opened yet".into()),
            }),
            cmd_tx,
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(run(dev.clone(), backend, cmd_rx));
        dev
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        xoq_link::sync::lock(&self.state)
    }

    /// The catalog entry for a client granted `access`.
    pub fn info(&self, access: Access) -> DeviceInfo {
        let st = self.lock();
        DeviceInfo {
            name: self.name.clone(),
            kind: DeviceKind::Serial,
            access,
            capabilities: self.capabilities,
            settings: DeviceSettings::Serial {
                line: st.line,
                modem: st.modem,
            },
        }
    }

    /// Attaches a client. Read-write access is exclusive, but for a stream that takes the place
    /// of its own writer's earlier stream (same `name`).
    pub fn attach(
        self: &Arc<Self>,
        access: Access,
        name: Option<WriterName>,
        outbox: Outbox,
    ) -> Result<Attachment, (ErrorCode, String)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if let Some(reason) = &st.gone {
            return Err((
                ErrorCode::DeviceGone,
                format!("{} is unavailable: {reason}", self.name),
            ));
        }
        let mut tally = WriterTally::default();
        if access == Access::ReadWrite {
            if let Some(w) = st.writer.take_if(|w| w.name.is_some() && w.name == name) {
                tracing::info!(device = %self.name, "a reconnected writer replaces its earlier stream");
                w.replaced.store(true, Ordering::Relaxed);
                st.subs.retain(|s| s.id != w.id);
            }
            // Says since when, not who: another client's identity is not this one's business.
            if let Some(Writer { since, .. }) = &st.writer {
                return Err((
                    ErrorCode::Busy,
                    format!(
                        "busy: {} is open read-write by another client (for {} s); open it \
                         read-only, or stop that client first",
                        self.name,
                        since.elapsed().as_secs()
                    ),
                ));
            }
            tally.written = st.remembered.counter(name);
            st.writer = Some(Writer {
                id,
                since: std::time::Instant::now(),
                name,
                replaced: tally.replaced.clone(),
            });
        }
        st.subs.push(Subscriber {
            id,
            tx: outbox,
            lossless: access == Access::ReadWrite,
            dropped_bytes: 0,
        });
        Ok(Attachment {
            dev: self.clone(),
            id,
            access,
            tally,
        })
    }

    fn detach(&self, id: u64) {
        let mut st = self.lock();
        st.subs.retain(|s| s.id != id);
        if st.writer.as_ref().is_some_and(|w| w.id == id) {
            st.writer = None;
        }
    }

    /// Sends `msg` to every attached client (see the module doc for the loss policy).
    async fn fanout(&self, msg: Message) {
        let bytes = match &msg {
            Message::Data(d) => d.len() as u64,
            _ => 0,
        };
        let lossless: Vec<Outbox> = {
            let mut st = self.lock();
            for s in st.subs.iter_mut().filter(|s| !s.lossless) {
                if s.dropped_bytes > 0 {
                    let text = format!(
                        "{} bytes from {} were dropped: this client reads too slowly",
                        s.dropped_bytes, self.name
                    );
                    if s.tx
                        .try_send(Message::Error {
                            code: ErrorCode::Overrun,
                            text,
                        })
                        .is_err()
                    {
                        s.dropped_bytes += bytes;
                        continue;
                    }
                    s.dropped_bytes = 0;
                }
                if s.tx.try_send(msg.clone()).is_err() {
                    s.dropped_bytes += bytes;
                }
            }
            st.subs
                .iter()
                .filter(|s| s.lossless)
                .map(|s| s.tx.clone())
                .collect()
        };
        for tx in lossless {
            // A closed outbox means that client is leaving; its session detaches it.
            let _ = tx.send(msg.clone()).await;
        }
    }

    async fn reply(&self, to: u64, msg: Message) {
        let tx = self
            .lock()
            .subs
            .iter()
            .find(|s| s.id == to)
            .map(|s| s.tx.clone());
        if let Some(tx) = tx {
            let _ = tx.send(msg).await;
        }
    }

    /// Marks the port failed, tells every client, and detaches them all.
    async fn fail(&self, reason: String) {
        tracing::warn!(device = %self.name, %reason, "serial port failed; will try to reopen it");
        let subs = {
            let mut st = self.lock();
            st.gone = Some(reason.clone());
            st.writer = None;
            std::mem::take(&mut st.subs)
        };
        for s in subs {
            let text = format!("{} failed: {reason}", self.name);
            let _ = s.tx.try_send(Message::Error {
                code: ErrorCode::DeviceGone,
                text,
            });
        }
    }

    async fn update_modem(&self, status: ModemStatus) {
        let changed = {
            let mut st = self.lock();
            let changed = st.modem != status;
            st.modem = status;
            changed
        };
        if changed {
            self.fanout(Message::ModemStatus(status)).await;
        }
    }
}

/// A client's hold on a device; dropping it detaches the client (and frees the writer slot).
pub struct Attachment {
    dev: Arc<SerialDevice>,
    id: u64,
    pub access: Access,
    tally: WriterTally,
}

impl Attachment {
    /// Queues an operation for the port, in order. Waits if the port is behind.
    pub async fn submit(&self, op: Op) -> Result<(), ()> {
        self.dev
            .cmd_tx
            .send(Command {
                from: self.id,
                op,
                tally: self.tally.clone(),
            })
            .await
            .map_err(|_| ())
    }
}

impl Attachment {
    /// `tcflow`, at once: not queued behind the data (stopped output holds that queue).
    pub async fn flow(&self, action: xoq_wire::FlowAction) {
        let switch = self.dev.lock().flow.clone();
        let r = match switch {
            Some(f) => f(action),
            None => Err(io::Error::other("the port is not open")),
        };
        if let Err(e) = r {
            let text = format!("{}: cannot {action:?}: {e}", self.dev.name);
            self.reply_error(ErrorCode::InvalidSetting, text).await;
        }
    }

    /// Sends an error to this client only.
    pub async fn reply_error(&self, code: ErrorCode, text: String) {
        self.dev.reply(self.id, Message::Error { code, text }).await;
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.dev.detach(self.id);
    }
}

async fn run<B: SerialBackend>(
    dev: Arc<SerialDevice>,
    mut backend: B,
    mut cmd_rx: mpsc::Receiver<Command>,
) {
    let what = backend.describe();
    // Say once that the device cannot be opened, not every second while it stays missing.
    let mut open_failure_logged = false;
    loop {
        let line = dev.lock().line;
        match backend.open(&line) {
            Ok((reader, mut control)) => {
                let modem = control.modem_status().ok().flatten().unwrap_or_default();
                let flow = control.flow_switch();
                if let Err(e) = &flow {
                    tracing::warn!(device = %dev.name, "tcflow unavailable on this port: {e}");
                }
                {
                    let mut st = dev.lock();
                    st.gone = None;
                    st.modem = modem;
                    st.flow = flow.ok();
                }
                tracing::info!(device = %dev.name, port = %what, %line, "serial port open");
                let reason = tokio::select! {
                    e = read_loop(&dev, reader) => e,
                    e = control_loop(&dev, control, &mut cmd_rx) => e,
                };
                dev.lock().flow = None;
                dev.fail(reason.to_string()).await;
            }
            Err(e) => {
                dev.lock().gone = Some(e.to_string());
                if !open_failure_logged {
                    open_failure_logged = true;
                    tracing::error!(device = %dev.name, port = %what, error = %e, "cannot open serial port; retrying every second");
                }
            }
        }
        if !crate::reopen::wait_discarding(&mut cmd_rx).await {
            return;
        }
    }
}

async fn read_loop<R: PortReader>(dev: &SerialDevice, mut reader: R) -> io::Error {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(n) => dev.fanout(Message::Data(buf[..n].to_vec())).await,
            Err(e) => return e,
        }
    }
}

async fn control_loop<C: PortControl>(
    dev: &SerialDevice,
    mut c: C,
    cmd_rx: &mut mpsc::Receiver<Command>,
) -> io::Error {
    let mut poll = tokio::time::interval(MODEM_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut has_modem = true;
    let mut due: Option<ReportDue> = None;
    loop {
        let report_at = due.as_ref().map(|d| d.at);
        tokio::select! {
            cmd = cmd_rx.recv() => {
                let Some(cmd) = cmd else {
                    return io::Error::other("server shutting down");
                };
                if let Err(e) = execute(dev, &mut c, cmd, &mut due).await {
                    return e;
                }
            }
            _ = sleep_until(report_at), if report_at.is_some() => {
                if let Some(d) = due.take() {
                    report(dev, &mut c, d.to, &d.tally).await;
                }
            }
            _ = poll.tick(), if has_modem => match c.modem_status() {
                Ok(Some(s)) => dev.update_modem(s).await,
                Ok(None) => has_modem = false,
                Err(e) => return e,
            },
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Tells the writer how much of its data the port took (`TxProgress`).
async fn report<C: PortControl>(dev: &SerialDevice, c: &mut C, to: u64, tally: &WriterTally) {
    let m = Message::TxProgress {
        written: tally.report(),
        queued: c.output_queue().unwrap_or(0),
    };
    dev.reply(to, m).await;
}

/// Runs one command. Errors returned are fatal for the port; per-request failures are
/// answered to the requesting client and the port stays open. `due` is the writer's report
/// owed (see `writer::REPORT_BYTES`).
async fn execute<C: PortControl>(
    dev: &SerialDevice,
    c: &mut C,
    cmd: Command,
    due: &mut Option<ReportDue>,
) -> io::Result<()> {
    let refused = |what: &str, e: io::Error| Message::Error {
        code: ErrorCode::InvalidSetting,
        text: format!("{}: cannot {what}: {e}", dev.name),
    };
    if cmd.tally.replaced.load(Ordering::Relaxed) {
        // The writer's new stream sends again whatever this one had queued.
        return Ok(());
    }
    match cmd.op {
        Op::Data(d) => {
            for chunk in d.chunks(CHUNK) {
                c.write_all(chunk).await?;
                cmd.tally
                    .written
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            if due.as_ref().is_some_and(|d| d.to != cmd.from) {
                // Owed to a stream this one replaced: this one reports the total.
                *due = None;
            }
            if cmd.tally.unreported() >= REPORT_BYTES {
                *due = None;
                report(dev, c, cmd.from, &cmd.tally).await;
            } else if due.is_none() {
                *due = Some(ReportDue {
                    to: cmd.from,
                    tally: cmd.tally.clone(),
                    at: tokio::time::Instant::now() + REPORT_DELAY,
                });
            }
        }
        Op::Progress => {
            *due = None;
            report(dev, c, cmd.from, &cmd.tally).await;
        }
        Op::Line(l) => match c.apply_line(&l) {
            Ok(applied) => {
                dev.lock().line = applied;
                tracing::debug!(device = %dev.name, line = %applied, "line settings applied");
                dev.fanout(Message::LineSettings(applied)).await;
            }
            Err(e) => dev.reply(cmd.from, refused("apply line settings", e)).await,
        },
        Op::Modem(m) => match c.set_modem(m) {
            Ok(()) => {
                if let Ok(Some(s)) = c.modem_status() {
                    dev.update_modem(s).await;
                }
            }
            Err(e) => dev.reply(cmd.from, refused("set modem lines", e)).await,
        },
        Op::Break(ms) => {
            if let Err(e) = c.send_break(ms).await {
                dev.reply(cmd.from, refused("send a break", e)).await;
            }
        }
        Op::SetBreak(on) => {
            if let Err(e) = c.set_break(on) {
                dev.reply(cmd.from, refused("set or clear a break", e))
                    .await;
            }
        }
        Op::Flush(q) => {
            if let Err(e) = c.flush(q) {
                dev.reply(cmd.from, refused("flush", e)).await;
            }
        }
        Op::Drain(seq) => {
            c.drain().await?;
            // Everything is sent: the writer hears so before `Drained` (`TIOCOUTQ` reads 0).
            if due.as_ref().is_some_and(|d| d.to == cmd.from) {
                *due = None;
            }
            report(dev, c, cmd.from, &cmd.tally).await;
            dev.reply(cmd.from, Message::Drained { seq }).await;
        }
    }
    Ok(())
}
