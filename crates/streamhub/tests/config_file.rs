//! The real binary with a config file: bad keys and values stop it with a message naming
//! them; good files apply, below the environment and flags.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_streamhub");

/// Runs `streamhub serve --config FILE` with `toml` in FILE; returns (exit code, stderr).
fn refused(toml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("streamhub.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("x.db"))
        .env_remove("STREAMHUB_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_key_exits_non_zero_naming_it() {
    let (code, stderr) = refused("max_fps = 30\nmax_viewers_per_stream = 10\n");
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("unknown key `max_viewers_per_stream`"),
        "{stderr}"
    );
}

#[test]
fn an_out_of_range_value_exits_non_zero_naming_it() {
    let (code, stderr) = refused("max_fps = 5000\n");
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("`max_fps`") && stderr.contains("5000"),
        "{stderr}"
    );
    let (code, stderr) = refused("chat_per_sec = -1.0\n");
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("`chat_per_sec`"), "{stderr}");
}

#[test]
fn the_environment_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("streamhub.toml");
    // Port 9 (discard) would need root on most systems; the environment's port 0 must win.
    std::fs::write(
        &file,
        format!(
            "bind = \"127.0.0.1:9\"\ndb = \"{}\"\n",
            dir.path().join("x.db").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("STREAMHUB_CONFIG", &file)
        .env("STREAMHUB_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("streamhub listening on http://127.0.0.1:"),
        "{line:?}"
    );
    assert!(!line.trim_end().ends_with(":9"), "{line:?}");
    assert!(
        dir.path().join("x.db").exists(),
        "the file's db setting applied"
    );
}
