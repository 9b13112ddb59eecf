//! The demo's transcripts and chapters fit its audio exactly: scripts/make-demo-media.sh speaks
//! each sentence as its own clip, so every cue after the first starts where speech starts again
//! after a silence. ffmpeg's `silencedetect` on the shipped MP3 checks that, and the chapters
//! start on cue starts.

mod common;

use common::Demo;
use rollcall::site::format::{parse_chapters, parse_cues};

/// (start, end) of every silence of 0.3 s or more, in seconds.
fn silences(path: &std::path::Path) -> Vec<(f64, f64)> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "silencedetect=n=-50dB:d=0.3", "-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed (bash .ci/run installs it)");
    let log = String::from_utf8_lossy(&out.stderr);
    let value = |line: &str, key: &str| -> Option<f64> {
        let at = line.find(key)? + key.len();
        line[at..].split_whitespace().next()?.parse().ok()
    };
    let mut out = Vec::new();
    let mut start = None;
    for line in log.lines() {
        if let Some(s) = value(line, "silence_start: ") {
            start = Some(s);
        }
        if let Some(e) = value(line, "silence_end: ") {
            out.push((start.take().unwrap_or(0.0), e));
        }
    }
    out
}

#[test]
fn every_cue_starts_where_its_sentence_does_and_chapters_start_on_cues() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let mut all = catalog.episodes.clone();
    all.extend(catalog.withheld.iter().cloned());
    assert_eq!(all.len(), 3);
    for ep in &all {
        let transcript = ep
            .transcript
            .as_ref()
            .expect("every demo episode has a transcript");
        let cues = parse_cues(&std::fs::read_to_string(&transcript.path).unwrap());
        // parse_cues keeps whole seconds for display; read the exact times from the file.
        let text = std::fs::read_to_string(&transcript.path).unwrap();
        let times: Vec<(f64, f64)> = text
            .lines()
            .filter_map(|l| l.split_once(" --> "))
            .map(|(a, b)| (secs(a), secs(b)))
            .collect();
        assert_eq!(times.len(), cues.len(), "{}", ep.slug);
        assert!(times.len() >= 4, "{}: one cue per sentence", ep.slug);
        for w in times.windows(2) {
            assert!(w[0].1 < w[1].0, "{}: cues in order, apart: {w:?}", ep.slug);
        }
        // The last cue ends with the speech: the measured duration adds only the MP3's
        // encoder delay and padding (well under 0.1 s).
        let last = times.last().unwrap().1;
        let measured = ep.duration.as_secs_f64();
        assert!(
            (0.0..0.1).contains(&(measured - last)),
            "{}: last cue ends at {last}, the audio lasts {measured}",
            ep.slug
        );
        // Between cues there is silence, and speech resumes exactly at the next cue's start.
        let quiet = silences(&ep.audio.path);
        for w in times.windows(2) {
            let (end, next) = (w[0].1, w[1].0);
            let gap = quiet
                .iter()
                .find(|(s, e)| *s <= end + 0.02 && *e >= next - 0.02)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: no silence between {end} and {next}: {quiet:?}",
                        ep.slug
                    )
                });
            assert!(
                (gap.1 - next).abs() < 0.02,
                "{}: speech resumes at {}, the cue starts at {next}",
                ep.slug,
                gap.1
            );
        }
        let chapters = ep
            .chapters
            .as_ref()
            .expect("every demo episode has chapters");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&chapters.path).unwrap()).unwrap();
        let starts: Vec<f64> = json["chapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["startTime"].as_f64().unwrap())
            .collect();
        assert!(starts.len() >= 2, "{}", ep.slug);
        assert_eq!(
            parse_chapters(&std::fs::read_to_string(&chapters.path).unwrap()).len(),
            starts.len()
        );
        for s in starts {
            assert!(
                times.iter().any(|(c, _)| (c - s).abs() < 0.0005),
                "{}: chapter at {s} is not a cue start",
                ep.slug
            );
        }
    }
}

/// `00:00:08.466` in seconds.
fn secs(t: &str) -> f64 {
    t.trim()
        .split(':')
        .fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap())
}
