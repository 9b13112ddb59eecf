//! The command line as users meet it: every command's help has a description and examples and
//! prints no Markdown backticks; completions and the manual page come out for each shell; logs
//! can be JSON, every line of them.

mod common;

use std::process::Command;

use common::{get, Demo};

fn rollcall(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn every_command_has_a_description_and_examples_and_no_backticks() {
    let commands: &[&[&str]] = &[
        &[],
        &["check"],
        &["build"],
        &["serve"],
        &["user"],
        &["user", "add"],
        &["user", "list"],
        &["user", "remove"],
        &["user", "token"],
        &["user", "suspend"],
        &["user", "reinstate"],
        &["token"],
        &["token", "create"],
        &["episode", "add"],
        &["stats"],
        &["completions"],
        &["man"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let (ok, help, err) = rollcall(&args);
        assert!(ok, "{args:?}: {err}");
        assert!(!help.contains('`'), "{args:?} prints backticks:\n{help}");
        assert!(help.contains("Example"), "{args:?} has no example:\n{help}");
        let description = help.lines().next().unwrap_or("");
        assert!(
            description.len() > 15,
            "{args:?} has no description: {description:?}"
        );
    }
    let (_, top, _) = rollcall(&["--help"]);
    assert!(
        top.contains("ROLLCALL_"),
        "the precedence is stated:\n{top}"
    );
}

#[test]
fn completions_and_the_manual_page() {
    for (shell, marker) in [
        ("bash", "_rollcall()"),
        ("zsh", "#compdef rollcall"),
        ("fish", "complete -c rollcall"),
    ] {
        let (ok, script, err) = rollcall(&["completions", shell]);
        assert!(ok, "{shell}: {err}");
        assert!(script.contains(marker), "{shell}:\n{script}");
        for sub in ["serve", "stats", "user", "completions"] {
            assert!(script.contains(sub), "{shell} completes {sub}");
        }
    }
    let (ok, _, err) = rollcall(&["completions", "tcsh"]);
    assert!(!ok && err.contains("tcsh"), "{err}");
    let (ok, man, _) = rollcall(&["man"]);
    assert!(ok);
    assert!(
        man.starts_with(".ie") || man.contains(".TH rollcall"),
        "{man}"
    );
    assert!(man.contains("serve"));
    // Neither needs a config file.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["completions", "bash"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_logs_are_json_every_line_access_lines_included() {
    let demo = Demo::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("--config")
        .arg(demo.path("config.toml"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("ROLLCALL_LOG_FORMAT", "json")
        .env("ROLLCALL_LOG_CLIENT_ADDRESS", "truncated")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut child);
    assert!(line.starts_with("listening on "), "{line:?}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = get(
        addr,
        "/feeds/defusing-difficult-encounters.xml",
        &[
            ("User-Agent", "Say \"hi\""),
            ("Referer", "https://x.example/p/s3cret/feeds/a.xml?k=v"),
        ],
    );
    assert_eq!(r.status, 200);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let log = common::stderr_of(&mut child);
    let mut access = 0;
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        if v["target"] == "access" {
            access += 1;
            let f = &v["fields"];
            assert_eq!(f["path"], "/feeds/defusing-difficult-encounters.xml");
            assert_eq!(f["client"], "127.0.0.0", "truncated");
            assert_eq!(f["ua"], "Say \"hi\"");
            assert_eq!(f["referer"], "https://x.example/p/*/feeds/a.xml");
        }
    }
    assert_eq!(access, 1, "{log}");
    assert!(!log.contains("s3cret"), "no token in the log");
}
