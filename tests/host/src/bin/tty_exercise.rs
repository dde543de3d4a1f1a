//! Drives a mounted serial tty the way serial tools do and checks, on the simulated port's
//! record, what reached the "hardware". Run in the kernel guest by `tests/vm/suites/cuse.sh`
//! (the host has no `/dev/cuse`), against the simulated echo port.
//!
//!   tty_exercise sequence DEV RECORD   pyserial's calls, in order, with data between them
//!   tty_exercise esptool DEV RECORD    esptool's DTR/RTS reset: in order, intervals not collapsed
//!   tty_exercise bulk DEV MIB          MIB mebibytes through the echo, both ways at once
//!   tty_exercise ping DEV              open, echo, close, twice
//!   tty_exercise closeflush DEV RECORD a program's echoes in flight at its close never reach the next
//!   tty_exercise paced DEV             writes paced by the line: they block, TIOCOUTQ, tcdrain
//!   tty_exercise xonxoff DEV           IXON: an echoed XOFF stops output, writes time out, tcflow restarts
//!   tty_exercise unplugged DEV         while the server is down: reads wait, writes fail
//!   tty_exercise rtt DEV N             N 32-byte round trips: p50 / p99 (benchmark)
//!
//! Prints `ok: ...` or `FAIL: ...` per check; exits 1 if any check failed.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, BaudRate, SetArg};
use xoq_tests_host::serial_ioctl::*;
use xoq_tests_host::stats::percentile;
use xoq_tests_host::Tty;

const T: Duration = Duration::from_secs(20);

struct Checks {
    failed: bool,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl std::fmt::Display) {
        if ok {
            println!("ok: {what}");
        } else {
            println!("FAIL: {what}");
            self.failed = true;
        }
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).cloned().unwrap_or_default();
    let mut c = Checks { failed: false };
    let dev = arg(2);
    let dev = Path::new(&dev);
    match arg(1).as_str() {
        "sequence" => sequence(&mut c, dev, Path::new(&arg(3))),
        "esptool" => esptool(&mut c, dev, Path::new(&arg(3))),
        "bulk" => bulk(&mut c, dev, arg(3).parse().unwrap_or(1)),
        "ping" => ping(&mut c, dev),
        "closeflush" => close_flush(&mut c, dev, Path::new(&arg(3))),
        "paced" => paced(&mut c, dev),
        "xonxoff" => xon_xoff(&mut c, dev),
        "unplugged" => unplugged(&mut c, dev),
        "rtt" => rtt(dev, arg(3).parse().unwrap_or(2000)),
        other => {
            eprintln!("unknown command {other:?}; see the module doc");
            std::process::exit(2);
        }
    }
    std::process::exit(i32::from(c.failed));
}

/// Writes `msg` and reads its echo back (the simulated port echoes every byte).
fn echo(tty: &Tty, msg: &[u8]) -> Vec<u8> {
    tty.write_all(msg, T);
    tty.read_exact(msg.len(), T)
}

/// pyserial: open, 115200 8N1, DTR/RTS, 1,000,000 baud by TCSETS2/BOTHER, break, flush,
/// read with timeout; then what pyserial users call next: tcdrain, TIOCMIWAIT, counters,
/// exclusive access, an ioctl no serial port has.
fn sequence(c: &mut Checks, dev: &Path, rec: &Path) {
    let start = record(rec).len();
    let tty = Tty::open_raw(dev);
    let fd = tty.fd.as_fd();
    let rx0 = icount(fd).expect("TIOCGICOUNT")[4];
    c.check(nix::unistd::isatty(fd).unwrap_or(false), "isatty");
    let mut t = termios::tcgetattr(fd).expect("tcgetattr");
    termios::cfmakeraw(&mut t);
    termios::cfsetspeed(&mut t, BaudRate::B115200).expect("cfsetspeed");
    termios::tcsetattr(fd, SetArg::TCSANOW, &t).expect("tcsetattr 115200 8N1");
    modem_change(fd, false, libc::TIOCM_DTR | libc::TIOCM_RTS).expect("TIOCMBIC");
    modem_change(fd, true, libc::TIOCM_DTR).expect("TIOCMBIS DTR");
    modem_change(fd, true, libc::TIOCM_RTS).expect("TIOCMBIS RTS");
    tty.write_all(b"A-data", T);
    set_speed_bother(fd, 1_000_000).expect("TCSETS2 BOTHER 1000000");
    tty.write_all(b"B-data", T);
    termios::tcsendbreak(fd, 0).expect("tcsendbreak");
    ioctl_value(fd, libc::TIOCSBRK, 0).expect("TIOCSBRK");
    ioctl_value(fd, libc::TIOCCBRK, 0).expect("TIOCCBRK");
    tty.write_all(b"C-data", T);
    termios::tcflush(fd, termios::FlushArg::TCIFLUSH).expect("tcflush");
    termios::tcdrain(fd).expect("tcdrain");
    // tcdrain returned: the port has transmitted everything, so its drain is already recorded.
    let events: Vec<String> = record(rec)[start..].iter().map(describe).collect();
    let want = [
        "modem 1 1".to_string(), // open raises DTR and RTS
        "line 115200".into(),
        "modem 0 0".into(),
        "modem 1 0".into(),
        "modem 1 1".into(),
        format!("data {}", hex(b"A-data")),
        "line 1000000".into(),
        format!("data {}", hex(b"B-data")),
        "break 0".into(),
        "break_on".into(),
        "break_off".into(),
        format!("data {}", hex(b"C-data")),
        "flush input".into(),
        "drain".into(),
    ];
    c.check(
        events == want,
        format!("every change reached the port in order, data between: {events:?}"),
    );
    let t2 = termios2(fd).expect("TCGETS2");
    c.check(
        t2.c_ospeed == 1_000_000,
        format!("TCGETS2 reads back {} baud", t2.c_ospeed),
    );

    // read with timeout: nothing (pending echoes flushed), then an echo. The echoes of the 18
    // bytes written above may still be on their way back (slow under emulation), less those
    // the port's input flush discarded (as a UART's would; the record says how many): wait
    // until the tty has received the rest (TIOCGICOUNT rx), so that none can arrive after the
    // flush below.
    let discarded = record(rec)[start..]
        .iter()
        .find(|e| e["event"] == "flush")
        .and_then(|e| e["discarded"].as_i64())
        .unwrap_or(0) as i32;
    let deadline = Instant::now() + T;
    let mut rx = icount(fd).expect("TIOCGICOUNT")[4];
    while rx.wrapping_sub(rx0) < 18 - discarded && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        rx = icount(fd).expect("TIOCGICOUNT")[4];
    }
    c.check(
        rx.wrapping_sub(rx0) == 18 - discarded,
        format!(
            "the echoes of the 18 bytes written came back, but the {discarded} the port's flush \
             discarded (rx {rx0} -> {rx})"
        ),
    );
    termios::tcflush(fd, termios::FlushArg::TCIFLUSH).expect("tcflush input");
    let t0 = Instant::now();
    let nothing = tty.read_for(Duration::from_millis(300));
    c.check(
        nothing.is_empty() && t0.elapsed() >= Duration::from_millis(300),
        "a read with a 300 ms timeout and no data times out",
    );
    c.check(echo(&tty, b"ping") == b"ping", "echo after the settings");

    // TIOCMIWAIT: the simulated port loops RTS back to CTS. The wait counts only changes after
    // the tty has parked it, and nothing tells when that happened: toggle RTS every 200 ms until
    // the waiter returns (at most T; a waiter still blocked then is a failure, not a hang).
    let before = icount(fd).expect("TIOCGICOUNT");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let path = dev.to_path_buf();
        std::thread::spawn(move || {
            let t = Tty::open_raw(&path);
            let t0 = Instant::now();
            let r = modem_wait(t.fd.as_fd(), libc::TIOCM_CTS);
            let _ = done_tx.send((r.is_ok(), t0.elapsed()));
        });
    }
    let deadline = Instant::now() + T;
    let mut toggles = 0;
    let woke = loop {
        match done_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => break Some(r),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(_) if Instant::now() >= deadline => break None,
            Err(_) => {}
        }
        let rts = modem_bits(fd).expect("TIOCMGET") & libc::TIOCM_RTS != 0;
        modem_change(fd, !rts, libc::TIOCM_RTS).expect("TIOCMBIS/TIOCMBIC RTS");
        toggles += 1;
    };
    let what = match woke {
        Some((true, after)) => format!("{after:?} after it started"),
        Some((false, _)) => "it failed".to_string(),
        None => format!("no answer within {T:?}"),
    };
    c.check(
        matches!(woke, Some((true, _))),
        format!("TIOCMIWAIT woke when CTS followed RTS ({what}; {toggles} RTS toggles)"),
    );
    // End with RTS off and wait until CTS has followed it through the port.
    modem_change(fd, false, libc::TIOCM_RTS).expect("TIOCMBIC RTS");
    let deadline = Instant::now() + T;
    while modem_bits(fd).expect("TIOCMGET") & libc::TIOCM_CTS != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let now = icount(fd).expect("TIOCGICOUNT");
    c.check(
        now[0] > before[0] && now[4].wrapping_sub(rx0) >= 22 - discarded && now[5] >= 22,
        format!(
            "TIOCGICOUNT: cts {}->{} transitions, rx {} and tx {} bytes (22 sent, echoed but \
             for the {discarded} the port's flush discarded)",
            before[0], now[0], now[4], now[5]
        ),
    );
    let bits = modem_bits(fd).expect("TIOCMGET");
    c.check(
        bits & libc::TIOCM_CTS == 0 && bits & libc::TIOCM_DSR != 0 && bits & libc::TIOCM_CD != 0,
        format!("TIOCMGET {bits:#x}: CTS follows RTS (off), DSR and CD follow DTR (on)"),
    );

    // exclusive access, and an ioctl no serial port answers
    ioctl_value(fd, libc::TIOCEXCL, 0).expect("TIOCEXCL");
    let second = nix::fcntl::open(
        dev,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    );
    c.check(
        matches!(second, Err(nix::errno::Errno::EBUSY)),
        format!("TIOCEXCL: a second open fails with EBUSY ({second:?})"),
    );
    ioctl_value(fd, libc::TIOCNXCL, 0).expect("TIOCNXCL");
    let mut v = 0;
    let r = ioctl_int_ptr(fd, libc::TIOCSTI, &mut v);
    c.check(
        r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::ENOTTY),
        format!("an unknown ioctl gets ENOTTY ({r:?})"),
    );
}

/// esptool's classic reset; prints the intervals the port saw.
///
/// The port sees each interval as the program's sleep plus the difference of two modem
/// messages' delivery delays, which under emulation can be tens of milliseconds either way:
/// only a lower bound is checked (the steps were not collapsed into one), and a reset whose
/// intervals jitter below it is retried, up to 5 times. The order of the steps is checked on
/// every attempt.
fn esptool(c: &mut Checks, dev: &Path, rec: &Path) {
    let tty = Tty::open_raw(dev);
    let fd = tty.fd.as_fd();
    let mut attempt = 0;
    let (reset, boot) = loop {
        attempt += 1;
        // Start from DTR on, RTS off so that every step below changes a line.
        let mut bits = libc::TIOCM_DTR;
        ioctl_int_ptr(fd, libc::TIOCMSET, &mut bits).expect("TIOCMSET");
        // Once tcdrain returns the port has recorded that change: it cannot land after `start`.
        termios::tcdrain(fd).expect("tcdrain");
        let start = record(rec).len();
        let t0 = Instant::now();
        modem_change(fd, false, libc::TIOCM_DTR).expect("DTR off"); // IO0 high
        modem_change(fd, true, libc::TIOCM_RTS).expect("RTS on"); // EN low: reset
        std::thread::sleep(Duration::from_millis(100));
        let t1 = Instant::now();
        modem_change(fd, true, libc::TIOCM_DTR).expect("DTR on"); // IO0 low
        modem_change(fd, false, libc::TIOCM_RTS).expect("RTS off"); // EN high: boot
        std::thread::sleep(Duration::from_millis(50));
        let t2 = Instant::now();
        modem_change(fd, false, libc::TIOCM_DTR).expect("DTR off"); // done
        termios::tcdrain(fd).expect("tcdrain");
        let program = ((t1 - t0).as_secs_f64() * 1e3, (t2 - t1).as_secs_f64() * 1e3);
        let events: Vec<(String, f64)> = record(rec)[start..]
            .iter()
            .filter(|e| e["event"] == "modem")
            .map(|e| (describe(e), e["t"].as_f64().unwrap_or(0.0)))
            .collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        let want = [
            "modem 0 0",
            "modem 0 1",
            "modem 1 1",
            "modem 1 0",
            "modem 0 0",
        ];
        c.check(
            names == want,
            format!("esptool reset steps in order (attempt {attempt}): {names:?}"),
        );
        if names != want {
            return;
        }
        let ms = |a: usize, b: usize| (events[b].1 - events[a].1) * 1e3;
        let (reset, boot) = (ms(1, 2), ms(3, 4));
        println!(
            "esptool intervals at the port (attempt {attempt}): reset {reset:.1} ms (program \
             slept 100, measured {:.1}), boot {boot:.1} ms (program slept 50, measured {:.1})",
            program.0, program.1
        );
        if (reset >= 90.0 && boot >= 40.0) || attempt == 5 {
            break (reset, boot);
        }
    };
    c.check(
        reset >= 90.0,
        format!("reset interval {reset:.1} ms >= 90 (attempt {attempt})"),
    );
    c.check(
        boot >= 40.0,
        format!("boot interval {boot:.1} ms >= 40 (attempt {attempt})"),
    );
}

/// `mib` MiB through the echo: a writer thread and a reader at once; compared byte for byte.
fn bulk(c: &mut Checks, dev: &Path, mib: usize) {
    let n = mib << 20;
    let data: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
    let tty = Tty::open_raw(dev);
    let writer = {
        let path = dev.to_path_buf();
        let data = data.clone();
        std::thread::spawn(move || {
            let w = Tty::open_raw(&path);
            for chunk in data.chunks(4096) {
                w.write_all(chunk, Duration::from_secs(120));
            }
            termios::tcdrain(w.fd.as_fd()).is_ok()
        })
    };
    let t0 = Instant::now();
    let got = tty.read_exact(n, Duration::from_secs(300));
    let drained = writer.join().unwrap_or(false);
    let secs = t0.elapsed().as_secs_f64();
    c.check(
        got == data,
        format!(
            "{mib} MiB each way intact ({:.2} MB/s)",
            n as f64 / secs / 1e6
        ),
    );
    c.check(drained, "the writer's tcdrain returned");
}

/// Open, echo, close; twice.
fn ping(c: &mut Checks, dev: &Path) {
    for round in 1..=2 {
        let tty = Tty::open_raw(dev);
        let msg = format!("ping {round}");
        c.check(
            echo(&tty, msg.as_bytes()) == msg.as_bytes(),
            format!("open #{round}: echo"),
        );
    }
}

/// At 9600 baud, one program writes a line and closes at once (the echo is still coming back),
/// the next opens at once and must read only its own echo; the first line still reached the
/// port (output written before a close is transmitted).
fn close_flush(c: &mut Checks, dev: &Path, rec: &Path) {
    let first = Tty::open_raw(dev);
    set_speed_bother(first.fd.as_fd(), 9600).expect("9600 baud");
    first.drain();
    let stale = [b'S'; 200];
    first.write_all(&stale, T);
    drop(first);
    let next = Tty::open_raw(dev);
    let msg = b"fresh";
    next.write_all(msg, T);
    let got = next.read_exact(msg.len(), T);
    c.check(
        got == msg,
        format!(
            "the next program reads its own echo first: {:?}",
            String::from_utf8_lossy(&got)
        ),
    );
    let late = next.read_for(Duration::from_millis(700));
    c.check(
        late.is_empty(),
        format!(
            "and nothing of the previous program's after it ({} bytes)",
            late.len()
        ),
    );
    let deadline = Instant::now() + T;
    let sent = loop {
        let sent = record(rec).iter().any(|e| {
            e["event"] == "data"
                && e["len"] == 200
                && e["hex"].as_str().is_some_and(|h| h.starts_with("5353"))
        });
        if sent || Instant::now() > deadline {
            break sent;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    c.check(sent, "the line written before the close reached the port");
}

/// At 115200 baud (11,520 bytes a second at 8N1), 64 KiB written as fast as the tty takes it:
/// the writer waits for the line (a tty keeps a UART buffer, not the whole write), `TIOCOUTQ`
/// says what is still on its way, and `tcdrain` returns once the line has sent it all. Only
/// bounds that the line itself sets are checked as exact (nothing can beat its rate).
fn paced(c: &mut Checks, dev: &Path) {
    const N: usize = 64 * 1024;
    const BAUD: f64 = 115_200.0;
    let tty = Tty::open_raw(dev);
    set_speed_bother(tty.fd.as_fd(), 115_200).expect("115200 baud");
    tty.drain();
    let line_s = |bytes: usize| bytes as f64 * 10.0 / BAUD;
    let reader = {
        let path = dev.to_path_buf();
        std::thread::spawn(move || {
            Tty::open_raw(&path)
                .read_exact(N, Duration::from_secs(120))
                .len()
        })
    };
    let t0 = Instant::now();
    tty.write_all(&[0x42; N], Duration::from_secs(120));
    let wrote = t0.elapsed().as_secs_f64();
    let mut outq = 0;
    let q = ioctl_int_ptr(tty.fd.as_fd(), libc::TIOCOUTQ, &mut outq);
    c.check(
        q.is_ok() && outq > 0 && outq <= 8192,
        format!("TIOCOUTQ after the last write: {outq} bytes on their way (a UART buffer or two)"),
    );
    // The tty takes at most about 8 KiB ahead of the line.
    c.check(
        wrote >= line_s(N - 8192) * 0.95,
        format!("writing 64 KiB took {wrote:.2} s: the writer waited for the line ({:.2} s for the first 56 KiB)", line_s(N - 8192)),
    );
    let drained = termios::tcdrain(tty.fd.as_fd()).is_ok();
    let all = t0.elapsed().as_secs_f64();
    c.check(
        drained && all >= line_s(N) * 0.98 && all <= line_s(N) * 3.0 + 10.0,
        format!(
            "tcdrain returned after {all:.2} s; the line needs {:.2} s",
            line_s(N)
        ),
    );
    let q = ioctl_int_ptr(tty.fd.as_fd(), libc::TIOCOUTQ, &mut outq);
    c.check(
        q.is_ok() && outq == 0,
        format!("TIOCOUTQ after tcdrain: {outq}"),
    );
    let echoed = reader.join().unwrap_or(0);
    c.check(echoed == N, format!("{echoed} of {N} bytes echoed"));
}

/// Writes until `write()` stays refused for 1.5 s (a write timeout); returns the bytes written.
fn write_until_blocked(tty: &Tty) -> Option<usize> {
    let fd = tty.fd.as_fd();
    let chunk = [b'q'; 1024];
    let mut written = 0;
    while written < 4 << 20 {
        match nix::unistd::write(fd, &chunk) {
            Ok(n) => written += n,
            Err(nix::errno::Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                if poll(&mut fds, PollTimeout::from(1500u16)).unwrap_or(1) == 0 {
                    return Some(written);
                }
            }
            Err(_) => return None,
        }
    }
    None
}

/// With IXON (XON/XOFF) on a loopback port: the XOFF a program writes comes back and stops
/// the port's output, so its next writes block and time out; `tcflow(TCION)` sends an XON
/// ahead of the queue, which comes back and restarts it; `tcflow(TCOOFF)` and `TCOON` stop
/// and restart output directly. Every byte written comes back, the XON/XOFF swallowed.
fn xon_xoff(c: &mut Checks, dev: &Path) {
    let tty = Tty::open_raw(dev);
    let fd = tty.fd.as_fd();
    set_speed_bother(fd, 1_000_000).expect("1 Mbaud");
    let mut t = tty.termios2();
    t.c_iflag |= libc::IXON | libc::IXOFF;
    tty.set_termios2(&t);
    tty.drain();
    tty.write_all(&[0x13], T);
    let written = write_until_blocked(&tty);
    c.check(
        written.is_some(),
        format!(
            "after its XOFF came back, writes blocked (a write timeout) after {written:?} bytes"
        ),
    );
    let early = tty.read_for(Duration::from_millis(300)).len();
    termios::tcflow(fd, termios::FlowArg::TCION).expect("TCION");
    let n = written.unwrap_or(0);
    let got = early + tty.read_exact(n - early.min(n), T).len();
    c.check(
        got == n,
        format!("TCION sent an XON ahead of the queue: {got} of {n} bytes came back"),
    );

    termios::tcflow(fd, termios::FlowArg::TCOOFF).expect("TCOOFF");
    let written = write_until_blocked(&tty);
    c.check(
        written.is_some(),
        format!("TCOOFF: writes blocked after {written:?} bytes"),
    );
    termios::tcflow(fd, termios::FlowArg::TCOON).expect("TCOON");
    let n = written.unwrap_or(0);
    let got = tty.read_exact(n, T).len();
    c.check(
        got == n,
        format!("TCOON restarted the output: {got} of {n} bytes came back"),
    );
    t.c_iflag &= !(libc::IXON | libc::IXOFF);
    tty.set_termios2(&t);
}

/// While the server is down: reads wait (nothing arrives, as with a cable pulled), writes
/// fail with EIO, carrier is off.
fn unplugged(c: &mut Checks, dev: &Path) {
    let tty = Tty::open_raw(dev);
    let fd = tty.fd.as_fd();
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let n = poll(&mut fds, PollTimeout::from(1000u16)).unwrap_or(-1);
    c.check(n == 0, "poll: no data for 1 s while unplugged");
    let w = nix::unistd::write(fd, b"lost");
    c.check(
        w == Err(nix::errno::Errno::EIO),
        format!("write fails with EIO ({w:?})"),
    );
    let bits = modem_bits(fd).unwrap_or(-1);
    c.check(
        bits >= 0 && bits & (libc::TIOCM_CD | libc::TIOCM_DSR | libc::TIOCM_CTS) == 0,
        format!("TIOCMGET {bits:#x}: CD, DSR and CTS are off"),
    );
}

/// Round-trip latency of 32-byte messages through the echo.
fn rtt(dev: &Path, n: usize) {
    let tty = Tty::open_raw(dev);
    set_speed_bother(tty.fd.as_fd(), xoq_tests_host::tty::BENCH_BAUD).expect("bench baud rate");
    let msg = [0x5Au8; 32];
    for _ in 0..50 {
        echo(&tty, &msg);
    }
    let mut us: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            echo(&tty, &msg);
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let p50 = percentile(&mut us, 0.5);
    let p99 = percentile(&mut us, 0.99);
    println!(
        "rtt {} n={n} p50_us={p50:.0} p99_us={p99:.0}",
        dev.display()
    );
}
