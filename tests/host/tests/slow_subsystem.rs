//! One slow subsystem cannot stall the others: while the mounter takes 8 s to make a
//! microphone's node (the mounter's test hook `XOQ_TEST_MOUNT_DELAY` stands in for a PipeWire
//! or D-Bus that takes its time; the PipeWire here accepts connections and never answers), the
//! serial port of the same server already works, and keeps working after.

use std::os::unix::net::UnixListener;
use std::time::Duration;

use xoq_tests_host::proc::free_udp_port;
use xoq_tests_host::{Env, Mount, Server, Tty};

const T: Duration = Duration::from_secs(30);

#[test]
fn a_hung_pipewire_does_not_stall_the_serial_port() {
    let mut env = Env::new();
    let pw_dir = env.path("hung-pipewire");
    std::fs::create_dir_all(&pw_dir).expect("dir");
    let listener = UnixListener::bind(pw_dir.join("pipewire-0")).expect("bind");
    // Accepts, then holds each connection without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    env.set_var("PIPEWIRE_RUNTIME_DIR", &pw_dir);
    env.set_var("XDG_RUNTIME_DIR", &pw_dir);
    env.set_var("XOQ_TEST_MOUNT_DELAY", "audio:8000");
    env.authorize("laptop", &[]);
    let cfg = env.path("server.toml");
    std::fs::write(
        &cfg,
        "[[serial]]\nname = \"echo0\"\nsimulated = true\n\
         [[audio]]\nname = \"mic0\"\ndirection = \"capture\"\nsimulated = true\n",
    )
    .expect("config");
    let server = Server::start(
        &env,
        free_udp_port(),
        &["--config".into(), cfg.display().to_string()],
    );
    let mut mount = Mount::start(&env, "laptop", &server.ticket, 1, &[]);
    assert!(
        mount.proc.seen.iter().any(|l| l.contains("serial  echo0")),
        "the serial port is mounted first: {:?}",
        mount.proc.seen
    );
    let tty = Tty::open_raw(&mount.links[0]);
    tty.write_all(b"hello", T);
    assert_eq!(tty.read_exact(5, T), b"hello");
    assert!(
        !mount.proc.seen.iter().any(|l| l.contains("audio")),
        "the serial port answered while the microphone's node was still being made \
         (its 8 s are not over): {:?}",
        mount.proc.seen
    );
    let audio = mount.wait_line_containing("mic0", T);
    assert!(audio.contains("mounted  audio  mic0"), "{audio}");
    tty.write_all(b"again", T);
    assert_eq!(tty.read_exact(5, T), b"again");
}
