//! The CAN device actor: owns one bus, fans its frames out to every attached client, writes
//! clients' frames with the maximum-age rule, and counts everything it could not deliver.
//!
//! Policy: a bus has many nodes, so any number of read-write clients may send. A frame one
//! client sends is shown to the other clients only once the bus carried it (the socket's own
//! echo, `CAN_RAW_RECV_OWN_MSGS`), never to the sender (no echo loops): nobody is told of a
//! frame that never reached the wire. Read-write clients get every frame losslessly (the bus socket is read only
//! as fast as they take it; the kernel's socket buffer absorbs bursts); read-only observers
//! never slow the bus: what they cannot take is counted in their `rx_dropped`.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use xoq_link::canframe::unix_us;
use xoq_wire::can::MAX_BATCH;
use xoq_wire::{
    Access, BusState, CanCounters, CanFrame, CanSettings, DeviceInfo, DeviceKind, DeviceSettings,
    ErrorCode, Message,
};

use super::backend::{is_fatal, CanBackend, CanBus};

/// Written frames remembered while waiting for the bus's confirmation.
const MAX_UNCONFIRMED: usize = 4096;
/// How often changed counters are sent to clients.
const COUNTER_PERIOD: Duration = Duration::from_millis(100);
/// Queued batches from clients before a sending client waits.
const CMD_DEPTH: usize = 64;

use crate::session::Outbox;

struct Sub {
    id: u64,
    tx: Outbox,
    access: Access,
    counters: CanCounters,
    dirty: bool,
}

struct State {
    subs: Vec<Sub>,
    gone: Option<String>,
    bus: BusState,
    /// Frames written and not yet confirmed by the bus, with their sender, oldest first.
    unconfirmed: VecDeque<(u64, CanFrame)>,
}

struct TxBatch {
    from: u64,
    frames: Vec<CanFrame>,
}

/// One served CAN bus.
pub struct CanDevice {
    pub name: String,
    settings: CanSettings,
    capabilities: u32,
    state: Mutex<State>,
    cmd_tx: mpsc::Sender<TxBatch>,
    next_id: AtomicU64,
}

impl CanDevice {
    pub fn spawn<B: CanBackend>(name: String, backend: B) -> Arc<Self> {
        let (cmd_tx, cmd_rx) = mpsc::channel(CMD_DEPTH);
        let dev = Arc::new(CanDevice {
            name,
            settings: backend.settings(),
            capabilities: backend.capabilities(),
            state: Mutex::new(State {
                subs: Vec::new(),
                gone: Some("not opened yet".into()),
                bus: BusState::Unknown,
                unconfirmed: VecDeque::new(),
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

    pub fn info(&self, access: Access) -> DeviceInfo {
        DeviceInfo {
            name: self.name.clone(),
            kind: DeviceKind::Can,
            access,
            capabilities: self.capabilities,
            settings: DeviceSettings::Can(self.settings),
        }
    }

    pub fn attach(
        self: &Arc<Self>,
        access: Access,
        outbox: Outbox,
    ) -> Result<CanAttachment, (ErrorCode, String)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if let Some(reason) = &st.gone {
            return Err((
                ErrorCode::DeviceGone,
                format!("{} is unavailable: {reason}", self.name),
            ));
        }
        let counters = CanCounters {
            state: st.bus,
            ..CanCounters::default()
        };
        st.subs.push(Sub {
            id,
            tx: outbox,
            access,
            counters,
            dirty: true,
        });
        Ok(CanAttachment {
            dev: self.clone(),
            id,
            access,
        })
    }

    fn count(&self, id: u64, f: impl FnOnce(&mut CanCounters)) {
        let mut st = self.lock();
        if let Some(s) = st.subs.iter_mut().find(|s| s.id == id) {
            f(&mut s.counters);
            s.dirty = true;
        }
    }

    /// Sends frames to every client but `exclude`, counting what each got or lost.
    async fn fanout(&self, frames: Vec<CanFrame>, exclude: Option<u64>) {
        let n = frames.len() as u64;
        let msg = Message::CanFrames(frames);
        let lossless: Vec<(u64, Outbox)> = {
            let mut st = self.lock();
            let mut out = Vec::new();
            for s in st.subs.iter_mut().filter(|s| Some(s.id) != exclude) {
                if s.access == Access::ReadWrite {
                    out.push((s.id, s.tx.clone()));
                    continue;
                }
                if s.tx.try_send(msg.clone()).is_ok() {
                    s.counters.rx_frames += n;
                } else {
                    s.counters.rx_dropped += n;
                }
                s.dirty = true;
            }
            out
        };
        for (id, tx) in lossless {
            if tx.send(msg.clone()).await.is_ok() {
                self.count(id, |c| c.rx_frames += n);
            }
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

    /// Tracks the controller state from error frames (linux/can/error.h).
    fn observe_errors(&self, frames: &[CanFrame]) {
        const CAN_ERR_CRTL: u32 = 0x04;
        const CAN_ERR_BUSOFF: u32 = 0x40;
        const CAN_ERR_RESTARTED: u32 = 0x100;
        let mut state = None;
        for f in frames.iter().filter(|f| f.is_error()) {
            if f.id & CAN_ERR_BUSOFF != 0 {
                state = Some(BusState::BusOff);
            } else if f.id & CAN_ERR_RESTARTED != 0 {
                state = Some(BusState::ErrorActive);
            } else if f.id & CAN_ERR_CRTL != 0 {
                let d1 = f.data.get(1).copied().unwrap_or(0);
                state = Some(if d1 & 0x30 != 0 {
                    BusState::ErrorPassive
                } else if d1 & 0x0c != 0 {
                    BusState::ErrorWarning
                } else {
                    BusState::ErrorActive
                });
            }
        }
        if let Some(s) = state {
            let mut st = self.lock();
            st.bus = s;
            for sub in st.subs.iter_mut() {
                sub.counters.state = s;
                sub.dirty = true;
            }
        }
    }

    /// Remembers a frame written for `from` until the bus confirms it.
    fn await_confirmation(&self, from: u64, f: &CanFrame) {
        let mut st = self.lock();
        if st.unconfirmed.len() == MAX_UNCONFIRMED {
            // Never confirmed (e.g. lost in a bus-off): forget the oldest.
            st.unconfirmed.pop_front();
        }
        st.unconfirmed.push_back((from, f.clone()));
    }

    /// The sender of a frame the bus just confirmed, matched by content, oldest first.
    fn confirm(&self, f: &CanFrame) -> Option<u64> {
        let mut st = self.lock();
        let same =
            |g: &CanFrame| g.id == f.id && g.flags == f.flags && g.len == f.len && g.data == f.data;
        let i = st.unconfirmed.iter().position(|(_, g)| same(g))?;
        st.unconfirmed.remove(i).map(|(from, _)| from)
    }

    /// Frames the kernel dropped on the bus socket before we read them: every client missed
    /// them, so every client's counter shows them.
    fn kernel_dropped(&self, n: u32) {
        tracing::warn!(device = %self.name, frames = n, "the kernel dropped frames on the bus socket");
        let mut st = self.lock();
        for s in st.subs.iter_mut() {
            s.counters.kernel_dropped += u64::from(n);
            s.dirty = true;
        }
    }

    fn flush_counters(&self) {
        let mut st = self.lock();
        for s in st.subs.iter_mut().filter(|s| s.dirty) {
            if s.tx.try_send(Message::CanCounters(s.counters)).is_ok() {
                s.dirty = false;
            }
        }
    }

    async fn fail(&self, reason: String) {
        tracing::warn!(device = %self.name, %reason, "CAN bus failed; will try to reopen it");
        let subs = {
            let mut st = self.lock();
            st.gone = Some(reason.clone());
            st.unconfirmed.clear();
            std::mem::take(&mut st.subs)
        };
        for s in subs {
            let text = format!("{} failed: {reason}", self.name);
            let _ = s.tx.try_send(Message::CanCounters(s.counters));
            let _ = s.tx.try_send(Message::Error {
                code: ErrorCode::DeviceGone,
                text,
            });
        }
    }
}

/// A client's hold on a CAN device; dropping it detaches the client.
pub struct CanAttachment {
    dev: Arc<CanDevice>,
    id: u64,
    pub access: Access,
}

impl CanAttachment {
    /// Queues frames for the bus, in order. Waits if the bus is behind.
    pub async fn submit(&self, frames: Vec<CanFrame>) -> Result<(), ()> {
        self.dev
            .cmd_tx
            .send(TxBatch {
                from: self.id,
                frames,
            })
            .await
            .map_err(|_| ())
    }
    /// Counts `n` frames of this client's that a newer frame of their id superseded on the way
    /// (latest-wins delivery): never written, and reported.
    pub fn superseded(&self, n: u64) {
        self.dev.count(self.id, |c| c.tx_superseded += n);
    }

    pub async fn reply(&self, msg: Message) {
        self.dev.reply(self.id, msg).await;
    }
    pub async fn reply_error(&self, code: ErrorCode, text: String) {
        self.reply(Message::Error { code, text }).await;
    }
}

impl Drop for CanAttachment {
    fn drop(&mut self) {
        self.dev.lock().subs.retain(|s| s.id != self.id);
    }
}

async fn run<B: CanBackend>(
    dev: Arc<CanDevice>,
    mut backend: B,
    mut cmd_rx: mpsc::Receiver<TxBatch>,
) {
    let what = backend.describe();
    // Say once that the device cannot be opened, not every second while it stays missing.
    let mut open_failure_logged = false;
    loop {
        match backend.open() {
            Ok(bus) => {
                dev.lock().gone = None;
                tracing::info!(device = %dev.name, bus = %what, fd = dev.settings.fd, "CAN bus open");
                let reason = tokio::select! {
                    e = rx_loop(&dev, &bus) => e,
                    e = tx_loop(&dev, &bus, &mut cmd_rx) => e,
                    _ = counters_loop(&dev) => io::Error::other("counters loop ended"),
                };
                dev.fail(reason.to_string()).await;
            }
            Err(e) => {
                dev.lock().gone = Some(e.to_string());
                if !open_failure_logged {
                    open_failure_logged = true;
                    tracing::error!(device = %dev.name, bus = %what, error = %e, "cannot open CAN bus; retrying every second");
                }
            }
        }
        if !crate::reopen::wait_discarding(&mut cmd_rx).await {
            return;
        }
    }
}

async fn rx_loop<B: CanBus>(dev: &CanDevice, bus: &B) -> io::Error {
    loop {
        let first = match bus.recv().await {
            Ok(f) => f,
            Err(e) => return e,
        };
        // Take what is already waiting, never wait for more: batching without added latency.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match bus.try_recv() {
                Ok(Some(f)) => batch.push(f),
                Ok(None) => break,
                Err(e) => return e,
            }
        }
        let dropped: u32 = batch.iter().map(|f| f.dropped).sum();
        if dropped > 0 {
            dev.kernel_dropped(dropped);
        }
        // Our own frames, now carried by the bus, go to everyone but their sender; frames
        // from other nodes go to everyone. Order is kept: a run of each is sent as one batch.
        let mut run: Vec<CanFrame> = Vec::new();
        let mut run_exclude: Option<u64> = None;
        for f in batch {
            let exclude = if f.own { dev.confirm(&f.frame) } else { None };
            if exclude != run_exclude && !run.is_empty() {
                dev.observe_errors(&run);
                dev.fanout(std::mem::take(&mut run), run_exclude).await;
            }
            run_exclude = exclude;
            run.push(f.frame);
        }
        if !run.is_empty() {
            dev.observe_errors(&run);
            dev.fanout(run, run_exclude).await;
        }
    }
}

async fn tx_loop<B: CanBus>(
    dev: &CanDevice,
    bus: &B,
    cmd_rx: &mut mpsc::Receiver<TxBatch>,
) -> io::Error {
    let max_age = u64::from(dev.settings.max_age_us);
    let mut warned = false;
    loop {
        let Some(batch) = cmd_rx.recv().await else {
            return io::Error::other("server shutting down");
        };
        let echoes = bus.echoes_own();
        // Frames to show the other clients now: only for a bus that does not confirm its own.
        let mut shown = Vec::new();
        let (mut ok, mut stale, mut failed) = (0u64, 0u64, 0u64);
        for f in batch.frames {
            // The age rule holds at the moment of the bus write: `send` checks this deadline
            // at every attempt, also after waiting for room in the transmit queue.
            let not_after =
                (max_age > 0 && f.timestamp_us > 0).then(|| f.timestamp_us.saturating_add(max_age));
            if not_after.is_some_and(|t| unix_us(SystemTime::now()) > t) {
                stale += 1;
                continue;
            }
            // Expect the bus's confirmation before writing: on vcan it arrives during write().
            if echoes {
                dev.await_confirmation(batch.from, &f);
            }
            match bus.send(&f, not_after).await {
                Ok(true) => {
                    ok += 1;
                    if !echoes {
                        shown.push(CanFrame {
                            timestamp_us: unix_us(SystemTime::now()),
                            ..f
                        });
                    }
                }
                Ok(false) => {
                    if echoes {
                        dev.confirm(&f);
                    }
                    stale += 1;
                }
                Err(e) => {
                    if echoes {
                        dev.confirm(&f);
                    }
                    if is_fatal(&e) {
                        return e;
                    }
                    failed += 1;
                    if !warned {
                        warned = true;
                        tracing::warn!(device = %dev.name, "frame not sent: {e} (further failures are counted)");
                    }
                }
            }
        }

        dev.count(batch.from, |c| {
            c.tx_frames += ok;
            c.tx_stale += stale;
            c.tx_failed += failed;
        });
        // With a confirming bus the others see the frames when the bus carried them (rx_loop).
        if !shown.is_empty() {
            dev.fanout(shown, Some(batch.from)).await;
        }
    }
}

async fn counters_loop(dev: &CanDevice) {
    let mut tick = tokio::time::interval(COUNTER_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        dev.flush_counters();
    }
}
