//! The simulated Damiao motor bus as a CAN backend: frames written to it are commands, the
//! motors' answers are what it receives.

use std::io;
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
}

impl CanBackend for SimDamiao {
    type Bus = SimBus;
    fn open(&mut self) -> io::Result<SimBus> {
        let (tx, rx) = mpsc::channel(DEPTH);
        Ok(SimBus {
            motors: Mutex::new((DamiaoBus::new(), Instant::now())),
            tx,
            rx: tokio::sync::Mutex::new(rx),
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
    async fn send(&self, frame: &CanFrame) -> io::Result<()> {
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
        Ok(())
    }
}
