//! Durations measured by Rollcall agree with ffprobe within 1 second on CBR MP3, VBR MP3 with and
//! without a Xing header, and M4A. The fixtures are generated here with ffmpeg.

mod common;

use std::path::Path;
use std::process::Command;

use rollcall::catalog::asset::measure_duration;

/// A 37.3 s signal that mixes a tone, noise and near-silence, so a VBR encoder really varies its rate.
const SIGNAL: &str = "sine=frequency=440:duration=12[a];anoisesrc=duration=13.3:amplitude=0.4[b];aevalsrc=0.001*sin(2*PI*220*t):d=12[c];[a][b][c]concat=n=3:v=0:a=1[out]";
const NOMINAL: f64 = 37.3;

fn encode(dir: &Path, name: &str, codec_args: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "-filter_complex",
        SIGNAL,
        "-map",
        "[out]",
        "-ac",
        "1",
        "-ar",
        "44100",
    ];
    args.extend_from_slice(codec_args);
    args.push(out.to_str().unwrap());
    common::ffmpeg(&args);
    out
}

fn ffprobe(args: &[&str], path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe must be installed (bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// ffprobe's container duration.
fn ffprobe_format_duration(path: &Path) -> f64 {
    ffprobe(
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
        path,
    )
    .trim()
    .parse()
    .unwrap()
}

/// ffprobe's sum over every packet: the true length when no header states it.
fn ffprobe_packet_duration(path: &Path) -> f64 {
    ffprobe(
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "packet=duration_time",
            "-of",
            "csv=p=0",
        ],
        path,
    )
    .lines()
    .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
    .sum()
}

fn assert_close(name: &str, ours: f64, theirs: f64) {
    assert!(
        (ours - theirs).abs() <= 1.0,
        "{name}: Rollcall measured {ours:.3} s, ffprobe says {theirs:.3} s"
    );
}

#[test]
fn cbr_mp3_matches_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(
        dir.path(),
        "cbr.mp3",
        &["-c:a", "libmp3lame", "-b:a", "128k"],
    );
    let ours = measure_duration(&f).unwrap().as_secs_f64();
    assert_close("CBR", ours, ffprobe_format_duration(&f));
    assert_close("CBR nominal", ours, NOMINAL);
}

#[test]
fn vbr_mp3_with_xing_header_matches_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "vbr.mp3", &["-c:a", "libmp3lame", "-q:a", "2"]);
    let ours = measure_duration(&f).unwrap().as_secs_f64();
    assert_close("VBR+Xing", ours, ffprobe_format_duration(&f));
    assert_close("VBR+Xing nominal", ours, NOMINAL);
}

#[test]
fn vbr_mp3_without_xing_header_matches_ffprobe_packets() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(
        dir.path(),
        "vbr-noxing.mp3",
        &["-c:a", "libmp3lame", "-q:a", "2", "-write_xing", "0"],
    );
    let ours = measure_duration(&f).unwrap().as_secs_f64();
    // Without a Xing header ffprobe's container duration is a guess from the first frame's bitrate;
    // its packet sum is the real length, and that is what Rollcall must match.
    assert_close("VBR no Xing", ours, ffprobe_packet_duration(&f));
    assert_close("VBR no Xing nominal", ours, NOMINAL);
}

#[test]
fn m4a_matches_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let f = encode(dir.path(), "aac.m4a", &["-c:a", "aac", "-b:a", "96k"]);
    let ours = measure_duration(&f).unwrap().as_secs_f64();
    assert_close("M4A", ours, ffprobe_format_duration(&f));
    assert_close("M4A nominal", ours, NOMINAL);
}

#[test]
fn demo_audio_matches_ffprobe() {
    for slug in [
        "behavioral-response-to-stress-and-fear",
        "defining-de-escalation",
    ] {
        let f = common::repo().join("episodes").join(slug).join("audio.mp3");
        let ours = measure_duration(&f).unwrap().as_secs_f64();
        assert_close(slug, ours, ffprobe_format_duration(&f));
        let size = std::fs::metadata(&f).unwrap().len();
        assert!(
            size < 1_000_000,
            "{slug}: demo audio is {size} bytes; keep it under 1 MB"
        );
    }
}
