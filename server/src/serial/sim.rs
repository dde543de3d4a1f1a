//! A simulated serial device: it echoes every byte, transmitted at the line's baud rate and
//! framing like a real UART ([`super::sim_line`]), wires its modem lines like a loopback plug
//! (RTS->CTS, DTR->DSR and DCD), and records every change a client asks of it, with a wall-clock
//! timestamp, as JSON lines in a file, so tests can check what reached the "hardware": line
//! settings, modem lines, breaks, flushes, drains and the data between them.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use xoq_wire::catalog::serial_caps;
use xoq_wire::{FlowAction, FlushQueue, LineSettings, ModemLines, ModemStatus};

use super::backend::FlowSwitch;
use super::backend::{PortControl, PortReader, SerialBackend};
use super::sim_flow::{SoftFlow, XOFF, XON};
use super::sim_line::{Receiver, Transmitter};
/// Bytes of each written chunk kept in the record.
const RECORD_HEAD: usize = 32;

/// Recipe for the simulated echo port.
pub struct SimEcho {
    /// Where to append the record of changes, if anywhere.
    pub record: Option<PathBuf>,
}

impl SerialBackend for SimEcho {
    type Reader = SimReader;
    type Control = SimControl;

    fn open(&mut self, line: &LineSettings) -> io::Result<(SimReader, SimControl)> {
        let rx = Arc::new(Receiver::default());
        let flow = Arc::new(SoftFlow::default());
        flow.set_mode(line.flow);
        let recorder = match &self.record {
            Some(p) => Some(
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
            ),
            None => None,
        };
        let mut control = SimControl {
            tx: Transmitter::new(rx.clone(), flow),
            line: *line,
            lines: ModemLines::default(),
            recorder,
        };
        control.record(json!({"event": "open", "line": line_json(line)}))?;
        Ok((SimReader { rx }, control))
    }

    fn describe(&self) -> String {
        "simulated echo".into()
    }

    fn capabilities(&self) -> u32 {
        serial_caps::LINE_SETTINGS
            | serial_caps::MODEM_LINES
            | serial_caps::BREAK
            | serial_caps::ARBITRARY_BAUD
    }
}

pub struct SimReader {
    rx: Arc<Receiver>,
}

impl PortReader for SimReader {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rx.read(buf).await
    }
}

pub struct SimControl {
    tx: Transmitter,
    line: LineSettings,
    lines: ModemLines,
    recorder: Option<File>,
}

impl SimControl {
    fn record(&mut self, mut event: serde_json::Value) -> io::Result<()> {
        let Some(f) = self.recorder.as_mut() else {
            return Ok(());
        };
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        event["t"] = json!(t);
        writeln!(f, "{event}")
    }
}

fn line_json(l: &LineSettings) -> serde_json::Value {
    json!({
        "baud": l.baud,
        "data_bits": l.data_bits,
        "parity": format!("{:?}", l.parity).to_lowercase(),
        "stop_bits": match l.stop_bits { xoq_wire::StopBits::One => 1, xoq_wire::StopBits::Two => 2 },
        "flow": format!("{:?}", l.flow).to_lowercase(),
    })
}

impl PortControl for SimControl {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        // Data is recorded too (length and first bytes), so tests can check that settings
        // changes arrived between the right bytes. Nothing is formatted without a record.
        if self.recorder.is_some() {
            let head: String = data
                .iter()
                .take(RECORD_HEAD)
                .map(|b| format!("{b:02x}"))
                .collect();
            self.record(json!({"event": "data", "len": data.len(), "hex": head}))?;
        }
        self.tx.send(&self.line, data).await;
        Ok(())
    }

    fn apply_line(&mut self, line: &LineSettings) -> io::Result<LineSettings> {
        self.line = *line;
        self.tx.flow.set_mode(line.flow);
        self.record(json!({"event": "line", "line": line_json(line)}))?;
        Ok(self.line)
    }

    fn set_modem(&mut self, lines: ModemLines) -> io::Result<()> {
        self.lines = lines;
        self.record(json!({"event": "modem", "dtr": lines.dtr, "rts": lines.rts}))
    }

    fn modem_status(&mut self) -> io::Result<Option<ModemStatus>> {
        let ModemLines { dtr, rts } = self.lines;
        Ok(Some(ModemStatus {
            dtr,
            rts,
            cts: rts,
            dsr: dtr,
            dcd: dtr,
            ri: false,
        }))
    }

    async fn send_break(&mut self, duration_ms: u16) -> io::Result<()> {
        self.record(json!({"event": "break", "duration_ms": duration_ms}))?;
        self.tx
            .hold(Duration::from_millis(u64::from(duration_ms)))
            .await;
        Ok(())
    }

    fn set_break(&mut self, on: bool) -> io::Result<()> {
        self.record(json!({"event": if on { "break_on" } else { "break_off" }}))
    }

    fn flush(&mut self, queue: FlushQueue) -> io::Result<()> {
        // Output has nothing queued: a write returns once its bytes have left.
        let discarded = match queue {
            FlushQueue::Input | FlushQueue::Both => self.tx.rx.flush(),
            FlushQueue::Output => 0,
        };
        self.record(json!({
            "event": "flush",
            "queue": format!("{queue:?}").to_lowercase(),
            "discarded": discarded,
        }))
    }

    fn output_queue(&mut self) -> io::Result<u32> {
        Ok(0)
    }

    fn flow_switch(&self) -> io::Result<FlowSwitch> {
        let (flow, rx) = (self.tx.flow.clone(), self.tx.rx.clone());
        Ok(Arc::new(move |action| {
            // XOFF/XON sent ahead of the queue come straight back from the echo device.
            let echo = |c: u8| rx.try_push(&flow.receive(&[c]));
            match action {
                FlowAction::SuspendOutput => flow.suspend(),
                FlowAction::RestartOutput => flow.restart(),
                FlowAction::SendStop => echo(XOFF),
                FlowAction::SendStart => echo(XON),
            }
            Ok(())
        }))
    }

    async fn drain(&mut self) -> io::Result<()> {
        self.record(json!({"event": "drain"}))
    }
}

impl Drop for SimControl {
    fn drop(&mut self) {
        self.tx.rx.close();
    }
}
