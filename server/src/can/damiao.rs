//! A simulated bus of eight Damiao-style motors (DM-J4310-like), ids 0x01-0x08, answering on
//! 0x11-0x18. Pure: time is passed in, so the model is deterministic under test.
//!
//! Implemented commands (8-byte classic frames to the motor's id):
//! - `FF FF FF FF FF FF FF FC` enable, `.. FD` disable, `.. FE` set the current position as zero,
//!   `.. FB` clear error; each is answered with a feedback frame.
//! - MIT control: p_des (16 bit, ±12.5 rad), v_des (12 bit, ±30 rad/s), kp (12 bit, 0-500),
//!   kd (12 bit, 0-5), t_ff (12 bit, ±10 N·m), packed big-endian as Damiao documents; answered
//!   with feedback. A disabled motor ignores the setpoint (zero torque) but still answers.
//!
//! Feedback: byte 0 = state << 4 | (id & 0xF) (state 0 disabled, 1 enabled), position 16 bit,
//! velocity 12 bit, torque 12 bit, MOS and rotor temperatures in °C.
//! Motor model: τ = kp·(p_des − p) + kd·(v_des − v) + t_ff, clamped to ±10 N·m; J·dv/dt = τ − b·v
//! with J = 0.01 kg·m², b = 0.05 N·m·s/rad, integrated in steps of at most 1 ms.

use std::time::Duration;

use xoq_wire::CanFrame;

pub const FIRST_ID: u32 = 0x01;
pub const MOTORS: u32 = 8;
/// Feedback id = command id + this.
pub const REPLY_OFFSET: u32 = 0x10;
const P_MAX: f64 = 12.5;
const V_MAX: f64 = 30.0;
const T_MAX: f64 = 10.0;
const KP_MAX: f64 = 500.0;
const KD_MAX: f64 = 5.0;
const INERTIA: f64 = 0.01;
const DAMPING: f64 = 0.05;

fn to_float(x: u32, bits: u32, min: f64, max: f64) -> f64 {
    x as f64 * (max - min) / ((1u32 << bits) - 1) as f64 + min
}

fn to_uint(x: f64, bits: u32, min: f64, max: f64) -> u32 {
    let x = x.clamp(min, max);
    ((x - min) * ((1u32 << bits) - 1) as f64 / (max - min)).round() as u32
}

/// An MIT-mode setpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MitCommand {
    pub p_des: f64,
    pub v_des: f64,
    pub kp: f64,
    pub kd: f64,
    pub t_ff: f64,
}

impl MitCommand {
    /// Packs the command as a host would send it (used by tests playing the host).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn encode(&self) -> [u8; 8] {
        let p = to_uint(self.p_des, 16, -P_MAX, P_MAX);
        let v = to_uint(self.v_des, 12, -V_MAX, V_MAX);
        let kp = to_uint(self.kp, 12, 0.0, KP_MAX);
        let kd = to_uint(self.kd, 12, 0.0, KD_MAX);
        let t = to_uint(self.t_ff, 12, -T_MAX, T_MAX);
        [
            (p >> 8) as u8,
            p as u8,
            (v >> 4) as u8,
            (((v & 0xf) << 4) | (kp >> 8)) as u8,
            kp as u8,
            (kd >> 4) as u8,
            (((kd & 0xf) << 4) | (t >> 8)) as u8,
            t as u8,
        ]
    }

    pub fn decode(d: &[u8; 8]) -> Self {
        let p = (u32::from(d[0]) << 8) | u32::from(d[1]);
        let v = (u32::from(d[2]) << 4) | (u32::from(d[3]) >> 4);
        let kp = ((u32::from(d[3]) & 0xf) << 8) | u32::from(d[4]);
        let kd = (u32::from(d[5]) << 4) | (u32::from(d[6]) >> 4);
        let t = ((u32::from(d[6]) & 0xf) << 8) | u32::from(d[7]);
        MitCommand {
            p_des: to_float(p, 16, -P_MAX, P_MAX),
            v_des: to_float(v, 12, -V_MAX, V_MAX),
            kp: to_float(kp, 12, 0.0, KP_MAX),
            kd: to_float(kd, 12, 0.0, KD_MAX),
            t_ff: to_float(t, 12, -T_MAX, T_MAX),
        }
    }
}

/// Decoded feedback, as a host would read it (used by tests playing the host).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feedback {
    pub id: u8,
    pub enabled: bool,
    pub position: f64,
    pub velocity: f64,
    pub torque: f64,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Feedback {
    pub fn decode(d: &[u8]) -> Option<Self> {
        if d.len() != 8 {
            return None;
        }
        let p = (u32::from(d[1]) << 8) | u32::from(d[2]);
        let v = (u32::from(d[3]) << 4) | (u32::from(d[4]) >> 4);
        let t = ((u32::from(d[4]) & 0xf) << 8) | u32::from(d[5]);
        Some(Feedback {
            id: d[0] & 0xf,
            enabled: d[0] >> 4 == 1,
            position: to_float(p, 16, -P_MAX, P_MAX),
            velocity: to_float(v, 12, -V_MAX, V_MAX),
            torque: to_float(t, 12, -T_MAX, T_MAX),
        })
    }
}

#[derive(Debug, Clone, Default)]
struct Motor {
    enabled: bool,
    /// Position relative to the motor's zero.
    position: f64,
    velocity: f64,
    torque: f64,
    cmd: MitCommand,
    updated: Duration,
}

impl Motor {
    fn advance(&mut self, now: Duration) {
        let mut left = now.saturating_sub(self.updated).as_secs_f64().min(1.0);
        self.updated = now;
        while left > 0.0 {
            let dt = left.min(0.001);
            left -= dt;
            let c = &self.cmd;
            self.torque = if self.enabled {
                (c.kp * (c.p_des - self.position) + c.kd * (c.v_des - self.velocity) + c.t_ff)
                    .clamp(-T_MAX, T_MAX)
            } else {
                0.0
            };
            self.velocity += (self.torque - DAMPING * self.velocity) / INERTIA * dt;
            self.velocity = self.velocity.clamp(-V_MAX, V_MAX);
            self.position = (self.position + self.velocity * dt).clamp(-P_MAX, P_MAX);
        }
    }

    fn feedback(&self, id: u32) -> [u8; 8] {
        let p = to_uint(self.position, 16, -P_MAX, P_MAX);
        let v = to_uint(self.velocity, 12, -V_MAX, V_MAX);
        let t = to_uint(self.torque, 12, -T_MAX, T_MAX);
        [
            (u8::from(self.enabled) << 4) | (id & 0xf) as u8,
            (p >> 8) as u8,
            p as u8,
            (v >> 4) as u8,
            (((v & 0xf) << 4) | (t >> 8)) as u8,
            t as u8,
            30, // MOS temperature, °C
            32, // rotor temperature, °C
        ]
    }
}

/// The eight motors.
#[derive(Debug, Clone, Default)]
pub struct DamiaoBus {
    motors: [Motor; MOTORS as usize],
}

impl DamiaoBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles a frame seen on the bus at time `now`; returns the motor's answer, if any.
    pub fn handle(&mut self, f: &CanFrame, now: Duration) -> Option<CanFrame> {
        if f.is_extended() || f.is_rtr() || f.is_error() || f.is_fd() || f.data.len() != 8 {
            return None;
        }
        if !(FIRST_ID..FIRST_ID + MOTORS).contains(&f.id) {
            return None;
        }
        let m = &mut self.motors[(f.id - FIRST_ID) as usize];
        m.advance(now);
        let d: [u8; 8] = f.data.as_slice().try_into().ok()?;
        match d {
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc] => m.enabled = true,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd] => {
                m.enabled = false;
                m.torque = 0.0;
            }
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe] => m.position = 0.0,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb] => {}
            _ => m.cmd = MitCommand::decode(&d),
        }
        let data = m.feedback(f.id).to_vec();
        Some(CanFrame {
            id: f.id + REPLY_OFFSET,
            flags: 0,
            len: 8,
            data,
            timestamp_us: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(id: u32, data: [u8; 8]) -> CanFrame {
        CanFrame {
            id,
            flags: 0,
            len: 8,
            data: data.to_vec(),
            timestamp_us: 0,
        }
    }
    const ENABLE: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc];
    const DISABLE: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd];
    const ZERO: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe];

    #[test]
    fn enable_is_answered_on_the_reply_id_with_state_enabled() {
        let mut bus = DamiaoBus::new();
        let r = bus
            .handle(&cmd(0x03, ENABLE), Duration::ZERO)
            .expect("reply");
        assert_eq!(r.id, 0x13);
        let fb = Feedback::decode(&r.data).expect("feedback");
        assert!(fb.enabled);
        assert_eq!(fb.id, 3);
        assert!(
            bus.handle(&cmd(0x09, ENABLE), Duration::ZERO).is_none(),
            "no motor 9"
        );
    }

    #[test]
    fn mit_command_drives_the_motor_to_the_setpoint_and_disable_stops_it() {
        let mut bus = DamiaoBus::new();
        bus.handle(&cmd(0x01, ENABLE), Duration::ZERO);
        let target = MitCommand {
            p_des: 1.0,
            v_des: 0.0,
            kp: 20.0,
            kd: 1.0,
            t_ff: 0.0,
        };
        let mut fb = None;
        for ms in 0..=2000u64 {
            if ms % 10 == 0 {
                let r = bus
                    .handle(&cmd(0x01, target.encode()), Duration::from_millis(ms))
                    .expect("reply");
                fb = Feedback::decode(&r.data);
            }
        }
        let fb = fb.expect("feedback");
        assert!((fb.position - 1.0).abs() < 0.02, "settles at p_des: {fb:?}");
        assert!(fb.velocity.abs() < 0.1, "and stops: {fb:?}");
        let r = bus
            .handle(&cmd(0x01, DISABLE), Duration::from_millis(2001))
            .expect("reply");
        let off = Feedback::decode(&r.data).expect("feedback");
        assert!(!off.enabled && off.torque.abs() < 0.01, "{off:?}");
        let r = bus
            .handle(&cmd(0x01, ZERO), Duration::from_millis(2002))
            .expect("reply");
        assert!(
            Feedback::decode(&r.data).expect("fb").position.abs() < 0.001,
            "zeroed"
        );
    }

    #[test]
    fn a_disabled_motor_does_not_move() {
        let mut bus = DamiaoBus::new();
        let push = MitCommand {
            p_des: 0.0,
            v_des: 0.0,
            kp: 0.0,
            kd: 0.0,
            t_ff: 5.0,
        };
        bus.handle(&cmd(0x02, push.encode()), Duration::ZERO);
        let r = bus
            .handle(&cmd(0x02, push.encode()), Duration::from_millis(500))
            .expect("reply");
        let fb = Feedback::decode(&r.data).expect("fb");
        assert!(
            !fb.enabled && fb.position.abs() < 0.001 && fb.velocity.abs() < 0.01,
            "{fb:?}"
        );
    }

    #[test]
    fn packing_round_trips_within_quantisation() {
        let c = MitCommand {
            p_des: -3.2,
            v_des: 7.5,
            kp: 123.0,
            kd: 2.5,
            t_ff: -1.25,
        };
        let d = MitCommand::decode(&c.encode());
        assert!((d.p_des - c.p_des).abs() < 0.001 && (d.v_des - c.v_des).abs() < 0.02);
        assert!(
            (d.kp - c.kp).abs() < 0.2
                && (d.kd - c.kd).abs() < 0.002
                && (d.t_ff - c.t_ff).abs() < 0.01
        );
    }
}
