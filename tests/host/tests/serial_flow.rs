//! Software flow control (XON/XOFF) and `tcflow`, against the simulated port, whose echo
//! device sends back what it receives, like a loopback plug: with `IXON` an XOFF the program
//! writes comes back and stops the port's output, until `tcflow` restarts it.

use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{tcflow, FlowArg};
use xoq_link::client::{connect, DeviceStream};
use xoq_link::{bind_endpoint, EndpointOptions, Ticket};
use xoq_tests_host::serial_ioctl::set_speed_bother;
use xoq_tests_host::{Env, Mount, Server, Tty};
use xoq_wire::{Access, FlowAction, FlowControl, LineSettings, Message};

const T: Duration = Duration::from_secs(20);
const XOFF: u8 = 0x13;

/// Echoed data: at least `want` bytes (waiting up to `T` for them), then whatever else
/// arrives within `quiet` (other messages skipped).
async fn echo(d: &mut DeviceStream, want: usize, quiet: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    for (limit, wait) in [(want, T), (usize::MAX, quiet)] {
        let _ = tokio::time::timeout(wait, async {
            while got.len() < limit {
                match d.reader.next().await {
                    Ok(Some(Message::Data(b))) => got.extend(b),
                    Ok(Some(_)) => {}
                    _ => return,
                }
            }
        })
        .await;
    }
    got
}

/// How long "nothing more arrives" is watched.
const QUIET: Duration = Duration::from_millis(800);

#[test]
fn an_echoed_xoff_stops_the_port_until_tcflow_restarts_it() {
    let env = Env::new();
    env.authorize("tool", &[]);
    let server = Server::with_sim_echo(&env);
    let key = env.client_key("tool");
    let ticket: Ticket = server.ticket.parse().expect("ticket");
    tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let ep = bind_endpoint(key, EndpointOptions::default())
            .await
            .expect("endpoint");
        let s = connect(&ep, &ticket, "tool", T).await.expect("connect");
        let mut d = s
            .open_device_as("echo0", Access::ReadWrite, 7)
            .await
            .expect("open");
        let line = LineSettings {
            baud: 9600,
            flow: FlowControl::Software,
            ..LineSettings::default()
        };
        for m in [
            Message::LineSettings(line),
            Message::Data(vec![b'a', XOFF, b'b', b'c']),
        ] {
            d.writer.send(&m).await.expect("send");
        }
        assert_eq!(
            echo(&mut d, 1, QUIET).await,
            b"a",
            "the XOFF came back, was swallowed, and stopped the output"
        );
        d.writer
            .send(&Message::Flow(FlowAction::RestartOutput))
            .await
            .expect("send");
        assert_eq!(echo(&mut d, 2, Duration::ZERO).await, b"bc");

        // TCIOFF / TCION: the characters go ahead of the queue, and come back.
        d.writer
            .send(&Message::Flow(FlowAction::SendStop))
            .await
            .expect("send");
        d.writer
            .send(&Message::Data(b"xyz".to_vec()))
            .await
            .expect("send");
        assert_eq!(
            echo(&mut d, 0, QUIET).await,
            b"",
            "stopped by the XOFF sent ahead"
        );
        d.writer
            .send(&Message::Flow(FlowAction::SendStart))
            .await
            .expect("send");
        assert_eq!(echo(&mut d, 3, Duration::ZERO).await, b"xyz");
    });
}

#[test]
fn through_a_pty_a_program_that_sent_xoff_blocks_in_write_until_tcflow() {
    let env = Env::new();
    env.authorize("laptop", &[]);
    let server = Server::with_sim_echo(&env);
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    let fd = tty.fd.as_fd();
    set_speed_bother(fd, 1_000_000).expect("1 Mbaud");
    let mut t = tty.termios2();
    t.c_iflag |= libc::IXON | libc::IXOFF;
    tty.set_termios2(&t);
    // The settings travel before the data that follows them.
    tty.write_all(&[XOFF], T);
    let chunk = [b'q'; 1024];
    let mut written = 0usize;
    let blocked = loop {
        match nix::unistd::write(fd, &chunk) {
            Ok(n) => written += n,
            Err(nix::errno::Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                // A write timeout: the queue stays full, the port sends nothing.
                if poll(&mut fds, PollTimeout::from(1500u16)).unwrap_or(1) == 0 {
                    break true;
                }
            }
            Err(e) => panic!("write: {e}"),
        }
        if written > 4 << 20 {
            break false;
        }
    };
    assert!(
        blocked,
        "after its XOFF came back the program could write {written} bytes without blocking"
    );
    let echoed_while_stopped = tty.read_for(Duration::from_millis(300)).len();
    tcflow(fd, FlowArg::TCOOFF).expect("TCOOFF");
    tcflow(fd, FlowArg::TCOON).expect("TCOON");
    let rest = tty.read_exact(written - echoed_while_stopped, T);
    assert_eq!(
        echoed_while_stopped + rest.len(),
        written,
        "after TCOON everything written came back ({written} bytes, the XOFF swallowed)"
    );
    assert!(rest.iter().all(|b| *b == b'q'));
}
