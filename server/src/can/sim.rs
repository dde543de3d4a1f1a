//! The simulated Damiao motor bus as a CAN backend: frames written to it are commands, the
//! motors' answers are what it receives. With a record file, the age of every command it
//! executes (µs between the frame's timestamp and its execution) is appended to it, one
//! `AGE_US ID DATA` line per command (id and data in hex): the proof that no stale command
//! reaches the motors, and of what reached them in which order.

use std::fs::{File, OpenOptions};
use std::io::{self, LineWriter, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::mpsc;
use xoq_link::canframe::unix_us;
use xoq_wire::catalog::can_caps;
use xoq_wire::{CanFrame, CanSettings};

use super::backend::{BusFrame, CanBackend, CanBus};
use super::damiao::DamiaoBus;

/// Answers queued before a writer waits.
const DEPTH: usize = 4096;

pub struct SimDamiao {
    pub max_age_us: u32,
    /// Where to append the age of every executed command, if anywhere.
    pub record: Option<PathBuf>,
}

impl CanBackend for SimDamiao {
    type Bus = SimBus;
    fn open(&mut self) -> io::Result<SimBus> {
        let (tx, rx) = mpsc::channel(DEPTH);
        let record = match &self.record {
            Some(p) => Some(Mutex::new(LineWriter::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot open record file {}: {e}", p.display()),
                        )
                    })?,
            ))),
            None => None,
        };
        Ok(SimBus {
            motors: Mutex::new((DamiaoBus::new(), Instant::now())),
            tx,
            rx: tokio::sync::Mutex::new(rx),
            record,
        })
    }
    fn settings(&self) -> CanSettings {
        CanSettings {
            fd: false,
            bitrate: 1_000_000,
            data_bitrate: 0,
            max_age_us: self.max_age_us,
        }
    }
    fn capabilities(&self) -> u32 {
        can_caps::TIMESTAMPS
    }
    fn describe(&self) -> String {
        "simulated Damiao bus (motors 0x01-0x08)".into()
    }
}

pub struct SimBus {
    motors: Mutex<(DamiaoBus, Instant)>,
    tx: mpsc::Sender<CanFrame>,
    rx: tokio::sync::Mutex<mpsc::Receiver<CanFrame>>,
    record: Option<Mutex<LineWriter<File>>>,
}

impl CanBus for SimBus {
    async fn recv(&self) -> io::Result<BusFrame> {
        let f = self.rx.lock().await.recv().await;
        let frame = f.ok_or_else(|| io::Error::other("simulated bus closed"))?;
        Ok(BusFrame {
            frame,
            dropped: 0,
            own: false,
        })
    }
    fn try_recv(&self) -> io::Result<Option<BusFrame>> {
        match self.rx.try_lock() {
            Ok(mut rx) => Ok(rx.try_recv().ok().map(|frame| BusFrame {
                frame,
                dropped: 0,
                own: false,
            })),
            Err(_) => Ok(None),
        }
    }
    fn echoes_own(&self) -> bool {
        false
    }
    async fn send(&self, frame: &CanFrame, not_after_us: Option<u64>) -> io::Result<bool> {
        let now_us = unix_us(std::time::SystemTime::now());
        if not_after_us.is_some_and(|t| now_us > t) {
            return Ok(false);
        }
        if let Some(r) = &self.record {
            let age = now_us.saturating_sub(frame.timestamp_us);
            let data: String = frame.data.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(xoq_link::sync::lock(r), "{age} {:03x} {data}", frame.id)?;
        }
        let reply = {
            let mut m = xoq_link::sync::lock(&self.motors);
            let now = m.1.elapsed();
            m.0.handle(frame, now)
        };
        if let Some(mut r) = reply {
            r.timestamp_us = unix_us(std::time::SystemTime::now());
            self.tx
                .send(r)
                .await
                .map_err(|_| io::Error::other("simulated bus closed"))?;
        }
        Ok(true)
    }
}
