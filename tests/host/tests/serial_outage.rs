//! An outage with bytes on their way: the server stalls (SIGSTOP) for longer than the link's
//! idle timeout while a program keeps writing lines to `/dev/ttyXOQ0`. The mounter loses the
//! link, reconnects when the server runs again, and every line reaches the remote port once,
//! in order: what the port took before the outage is not sent twice, what was in flight or
//! written meanwhile is not lost.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use xoq_tests_host::{Env, HardwarePty, Mount, Server, Tty};

const T: Duration = Duration::from_secs(60);
const LINES: usize = 300;

#[test]
fn lines_written_across_an_outage_reach_the_port_once_in_order() {
    let env = Env::new();
    let hw = HardwarePty::new();
    env.authorize("laptop", &[]);
    let server = Server::with_pty_port(&env, &hw);
    let mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    let tty = Tty::open_raw(&mount.links[0]);
    std::thread::sleep(Duration::from_millis(300));
    hw.master.drain();

    let want: Vec<u8> = (0..LINES)
        .flat_map(|i| format!("line {i:04}\n").into_bytes())
        .collect();
    let got = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for line in want.chunks(10) {
                tty.write_all(line, T);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let pid = nix::unistd::Pid::from_raw(server.proc.child.id() as i32);
        let outage = s.spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let _ = nix::sys::signal::kill(pid, Signal::SIGSTOP);
            // Longer than the 6 s idle timeout: both ends give the connection up.
            std::thread::sleep(Duration::from_secs(9));
            let _ = nix::sys::signal::kill(pid, Signal::SIGCONT);
        });
        let t0 = Instant::now();
        let mut got = Vec::new();
        while got.len() < want.len() && t0.elapsed() < T * 2 {
            got.extend(
                hw.master
                    .read_exact(want.len() - got.len(), Duration::from_secs(1)),
            );
        }
        // Nothing more (a line sent twice would show here).
        got.extend(hw.master.read_for(Duration::from_millis(500)));
        writer.join().expect("writer");
        outage.join().expect("outage");
        got
    });
    let text = String::from_utf8_lossy(&got);
    assert_eq!(
        got.len(),
        want.len(),
        "{} bytes reached the port, {} were written: {text}",
        got.len(),
        want.len()
    );
    assert!(got == want, "lines out of order or altered: {text}");
    let status = env.run("xoq-mount", "laptop", &["status", "--json"]);
    assert!(
        status.contains("\"reconnects\":") && !status.contains("\"reconnects\":0"),
        "the link did drop and come back: {status}"
    );
}
