//! Settings a program puts on /dev/ttyXOQ0 reach the remote port.
//!
//! A Linux PTY forces CS8 and clears PARENB on every tcsetattr (drivers/tty/pty.c), so data
//! bits and parity cannot be observed through a PTY on either side; they are checked at the
//! protocol level against the simulated port's record instead (see `parity_and_data_bits_*`).

use std::process::Command;
use std::time::Duration;

use xoq_tests_host::{Env, HardwarePty, Mount, Server, Tty};

const T: Duration = Duration::from_secs(10);

fn setup() -> (Env, HardwarePty, Server, Mount) {
    let env = Env::new();
    let hw = HardwarePty::new();
    env.authorize("laptop", &[]);
    let server = Server::with_pty_port(&env, &hw);
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    (env, hw, server, mount)
}

#[test]
fn stty_speed_reaches_the_remote_port() {
    let (_env, hw, _server, mount) = setup();
    let _hold = Tty::open_raw(&mount.links[0]);
    for speed in ["921600", "9600", "1000000"] {
        let out = Command::new("stty")
            .arg("-F")
            .arg(&mount.links[0])
            .arg(speed)
            .output()
            .expect("stty");
        assert!(
            out.status.success(),
            "stty {speed}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: u32 = speed.parse().expect("number");
        let t = hw.master.wait_termios(T, |t| t.c_ospeed == want);
        assert_eq!(
            t.c_ospeed, want,
            "remote port speed after `stty -F ttyXOQ0 {speed}`"
        );
    }
}

#[test]
fn tcsetattr_speed_stop_bits_and_flow_control_reach_the_remote_port() {
    let (_env, hw, _server, mount) = setup();
    let tty = Tty::open_raw(&mount.links[0]);

    // A non-standard rate, as Dynamixel and many motor buses use, set with termios2/BOTHER.
    let mut t = tty.termios2();
    t.c_cflag &= !libc::CBAUD;
    t.c_cflag |= libc::BOTHER;
    t.c_ospeed = 250_000;
    t.c_ispeed = 250_000;
    tty.set_termios2(&t);
    let got = hw.master.wait_termios(T, |h| h.c_ospeed == 250_000);
    assert_eq!(
        got.c_ospeed, 250_000,
        "non-standard speed at the remote port"
    );

    // Two stop bits.
    let mut t = tty.termios2();
    t.c_cflag |= libc::CSTOPB;
    tty.set_termios2(&t);
    let got = hw.master.wait_termios(T, |h| h.c_cflag & libc::CSTOPB != 0);
    assert_ne!(
        got.c_cflag & libc::CSTOPB,
        0,
        "two stop bits at the remote port"
    );

    // RTS/CTS flow control.
    let mut t = tty.termios2();
    t.c_cflag |= libc::CRTSCTS;
    tty.set_termios2(&t);
    let got = hw
        .master
        .wait_termios(T, |h| h.c_cflag & libc::CRTSCTS != 0);
    assert_ne!(got.c_cflag & libc::CRTSCTS, 0, "RTS/CTS at the remote port");

    // And back to one stop bit, no flow control, a standard speed.
    let mut t = tty.termios2();
    t.c_cflag &= !(libc::CSTOPB | libc::CRTSCTS | libc::CBAUD);
    t.c_cflag |= libc::B115200;
    t.c_ospeed = 115_200;
    t.c_ispeed = 115_200;
    tty.set_termios2(&t);
    let got = hw.master.wait_termios(T, |h| {
        h.c_ospeed == 115_200 && h.c_cflag & (libc::CSTOPB | libc::CRTSCTS) == 0
    });
    assert_eq!(got.c_ospeed, 115_200);
    assert_eq!(
        got.c_cflag & (libc::CSTOPB | libc::CRTSCTS),
        0,
        "settings cleared at the remote port"
    );

    // Data still flows at the new settings.
    tty.write_all(b"after settings", T);
    assert_eq!(hw.master.read_exact(14, T), b"after settings");
}
